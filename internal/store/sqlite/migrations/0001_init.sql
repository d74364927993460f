-- Initial schema. Times are INTEGER Unix nanoseconds in UTC; 0 is the zero
-- time.Time ("never"). Slices are JSON text. STRICT keeps SQLite from
-- silently storing a value of the wrong type.

CREATE TABLE customers (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL UNIQUE,
	display_name  TEXT    NOT NULL DEFAULT '',
	password_hash TEXT    NOT NULL DEFAULT '',
	failures      INTEGER NOT NULL DEFAULT 0,
	locked_until  INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE numbers (
	number      TEXT    PRIMARY KEY,
	customer_id INTEGER NOT NULL REFERENCES customers (id),
	label       TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX numbers_customer ON numbers (customer_id);

CREATE TABLE devices (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	number         TEXT    NOT NULL REFERENCES numbers (number),
	kind           TEXT    NOT NULL CHECK (kind IN ('z5', 'sip')),
	name           TEXT    NOT NULL DEFAULT '',
	sip_user       TEXT    NOT NULL UNIQUE,
	realm          TEXT    NOT NULL DEFAULT '',
	ha1_md5        TEXT    NOT NULL DEFAULT '',
	ha1_sha256     TEXT    NOT NULL DEFAULT '',
	ha1_sha512_256 TEXT    NOT NULL DEFAULT '',
	instance_id    TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_number ON devices (number);

CREATE TABLE sessions (
	token_hash  BLOB    PRIMARY KEY,
	kind        TEXT    NOT NULL,
	customer_id INTEGER NOT NULL REFERENCES customers (id),
	number      TEXT    NOT NULL DEFAULT '',
	device_id   INTEGER NOT NULL DEFAULT 0,
	parent_hash BLOB,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	revoked_at  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX sessions_parent ON sessions (parent_hash) WHERE parent_hash IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Address books. Owner is not a foreign key: a book is addressed by number
-- and numbers are never deleted, so the constraint would only add coupling.
CREATE TABLE contacts (
	owner         TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	uid           TEXT    NOT NULL,
	name          TEXT    NOT NULL DEFAULT '',
	given_name    TEXT    NOT NULL DEFAULT '',
	family_name   TEXT    NOT NULL DEFAULT '',
	number        TEXT    NOT NULL DEFAULT '',
	phones        TEXT,
	email         TEXT    NOT NULL DEFAULT '',
	organization  TEXT    NOT NULL DEFAULT '',
	note          TEXT    NOT NULL DEFAULT '',
	favorite      INTEGER NOT NULL DEFAULT 0,
	version       INTEGER NOT NULL,
	rev           INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (owner, id),
	UNIQUE (owner, uid)
) STRICT;
CREATE INDEX contacts_rev ON contacts (owner, rev);

-- A deleted contact leaves a tombstone so a CardDAV client that synced
-- before the delete learns about it.
CREATE TABLE contact_tombstones (
	owner TEXT    NOT NULL,
	id    TEXT    NOT NULL,
	rev   INTEGER NOT NULL,
	PRIMARY KEY (owner, id)
) STRICT;
CREATE INDEX contact_tombstones_rev ON contact_tombstones (owner, rev);

-- The current sync token of each book: bumped by every contact write.
CREATE TABLE book_revs (
	owner TEXT    PRIMARY KEY,
	rev   INTEGER NOT NULL
) STRICT;

CREATE TABLE licenses (
	id         TEXT    PRIMARY KEY,
	number     TEXT    NOT NULL,
	device_id  INTEGER NOT NULL,
	features   TEXT,
	not_before INTEGER NOT NULL,
	not_after  INTEGER NOT NULL,
	issued_at  INTEGER NOT NULL
) STRICT;

-- Registrations are soft state with an expiry, keyed by the flow that
-- carries them (RFC 5626: one device may hold several flows).
CREATE TABLE registrations (
	number     TEXT    NOT NULL,
	device_id  INTEGER NOT NULL,
	node       TEXT    NOT NULL,
	flow_id    TEXT    NOT NULL,
	contact    TEXT    NOT NULL DEFAULT '',
	instance   TEXT    NOT NULL DEFAULT '',
	expires_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (number, device_id, node, flow_id)
) STRICT;

CREATE TABLE nodes (
	name      TEXT    PRIMARY KEY,
	site      TEXT    NOT NULL DEFAULT '',
	address   TEXT    NOT NULL DEFAULT '',
	healthy   INTEGER NOT NULL DEFAULT 0,
	last_seen INTEGER NOT NULL
) STRICT;

CREATE TABLE calls (
	call_id     TEXT    PRIMARY KEY,
	from_number TEXT    NOT NULL DEFAULT '',
	to_number   TEXT    NOT NULL DEFAULT '',
	node        TEXT    NOT NULL DEFAULT '',
	started_at  INTEGER NOT NULL,
	answered_at INTEGER NOT NULL DEFAULT 0,
	ended_at    INTEGER NOT NULL DEFAULT 0,
	end_reason  TEXT    NOT NULL DEFAULT '',
	status      INTEGER NOT NULL DEFAULT 0,
	media_stats TEXT
) STRICT;
CREATE INDEX calls_from ON calls (from_number, started_at);
CREATE INDEX calls_to ON calls (to_number, started_at);
CREATE INDEX calls_started ON calls (started_at);
