-- Initial schema. Times are timestamptz (microseconds); NULL stands for the
-- zero time.Time ("never") in the columns where "never" is a value. Keys
-- that lists are ordered by use COLLATE "C" so the order is byte-wise on
-- every server, whatever its default locale, and matches SQLite's.

CREATE TABLE customers (
	id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username      text        NOT NULL UNIQUE,
	display_name  text        NOT NULL DEFAULT '',
	password_hash text        NOT NULL DEFAULT '',
	failures      integer     NOT NULL DEFAULT 0,
	locked_until  timestamptz,
	created_at    timestamptz NOT NULL
);

CREATE TABLE numbers (
	number      text COLLATE "C" PRIMARY KEY,
	customer_id bigint      NOT NULL REFERENCES customers (id),
	label       text        NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL
);
CREATE INDEX numbers_customer ON numbers (customer_id);

CREATE TABLE devices (
	id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	number         text        NOT NULL REFERENCES numbers (number),
	kind           text        NOT NULL CHECK (kind IN ('z5', 'sip')),
	name           text        NOT NULL DEFAULT '',
	sip_user       text        NOT NULL UNIQUE,
	realm          text        NOT NULL DEFAULT '',
	ha1_md5        text        NOT NULL DEFAULT '',
	ha1_sha256     text        NOT NULL DEFAULT '',
	ha1_sha512_256 text        NOT NULL DEFAULT '',
	instance_id    text        NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL
);
CREATE INDEX devices_number ON devices (number);

CREATE TABLE sessions (
	token_hash  bytea       PRIMARY KEY,
	kind        text        NOT NULL CHECK (kind IN ('zdial', 'mcs')),
	customer_id bigint      NOT NULL REFERENCES customers (id),
	number      text        NOT NULL DEFAULT '',
	device_id   bigint      NOT NULL DEFAULT 0,
	parent_hash bytea,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	revoked_at  timestamptz
);
CREATE INDEX sessions_parent ON sessions (parent_hash) WHERE parent_hash IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Address books. Owner is not a foreign key: a book is addressed by number
-- and numbers are never deleted, so the constraint would only add coupling.
CREATE TABLE contacts (
	owner         text COLLATE "C" NOT NULL,
	id            text COLLATE "C" NOT NULL,
	uid           text        NOT NULL,
	name          text        NOT NULL DEFAULT '',
	given_name    text        NOT NULL DEFAULT '',
	family_name   text        NOT NULL DEFAULT '',
	number        text        NOT NULL DEFAULT '',
	phones        jsonb,
	email         text        NOT NULL DEFAULT '',
	organization  text        NOT NULL DEFAULT '',
	note          text        NOT NULL DEFAULT '',
	favorite      boolean     NOT NULL DEFAULT false,
	version       bigint      NOT NULL,
	rev           bigint      NOT NULL,
	updated_at    timestamptz NOT NULL,
	PRIMARY KEY (owner, id),
	UNIQUE (owner, uid)
);
CREATE INDEX contacts_rev ON contacts (owner, rev);

-- A deleted contact leaves a tombstone so a CardDAV client that synced
-- before the delete learns about it.
CREATE TABLE contact_tombstones (
	owner text COLLATE "C" NOT NULL,
	id    text COLLATE "C" NOT NULL,
	rev   bigint NOT NULL,
	PRIMARY KEY (owner, id)
);
CREATE INDEX contact_tombstones_rev ON contact_tombstones (owner, rev);

-- The current sync token of each book, bumped by every contact write. Its
-- row is also the lock that orders the writes to one book (see package
-- comment).
CREATE TABLE book_revs (
	owner text COLLATE "C" PRIMARY KEY,
	rev   bigint NOT NULL
);

CREATE TABLE licenses (
	id         text        PRIMARY KEY,
	number     text        NOT NULL,
	device_id  bigint      NOT NULL,
	features   text[],
	not_before timestamptz NOT NULL,
	not_after  timestamptz NOT NULL,
	issued_at  timestamptz NOT NULL
);

-- Registrations are soft state with an expiry, keyed by the flow that
-- carries them (RFC 5626: one device may hold several flows).
CREATE TABLE registrations (
	number     text COLLATE "C" NOT NULL,
	device_id  bigint      NOT NULL,
	node       text COLLATE "C" NOT NULL,
	flow_id    text COLLATE "C" NOT NULL,
	contact    text        NOT NULL DEFAULT '',
	instance   text        NOT NULL DEFAULT '',
	expires_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (number, device_id, node, flow_id)
);

CREATE TABLE nodes (
	name      text COLLATE "C" PRIMARY KEY,
	site      text        NOT NULL DEFAULT '',
	address   text        NOT NULL DEFAULT '',
	healthy   boolean     NOT NULL DEFAULT false,
	last_seen timestamptz NOT NULL
);

CREATE TABLE calls (
	call_id     text COLLATE "C" PRIMARY KEY,
	from_number text        NOT NULL DEFAULT '',
	to_number   text        NOT NULL DEFAULT '',
	node        text        NOT NULL DEFAULT '',
	started_at  timestamptz NOT NULL,
	answered_at timestamptz,
	ended_at    timestamptz,
	end_reason  text        NOT NULL DEFAULT '',
	status      integer     NOT NULL DEFAULT 0,
	media_stats jsonb
);
CREATE INDEX calls_from ON calls (from_number, started_at);
CREATE INDEX calls_to ON calls (to_number, started_at);
CREATE INDEX calls_started ON calls (started_at);
