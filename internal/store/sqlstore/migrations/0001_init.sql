-- Initial schema, one text/template for both databases: the fields it
-- names are the column types of the database it is applied to
-- (sqlstore.Types).
--
-- SQLite: times are INTEGER Unix nanoseconds in UTC, 0 is the zero
-- time.Time ("never"), lists and JSON are text, and STRICT keeps SQLite
-- from silently storing a value of the wrong type.
-- PostgreSQL: times are timestamptz (microseconds) and NULL stands for
-- "never" in the columns where "never" is a value. Keys that lists are
-- ordered by use COLLATE "C", so the order is byte-wise on every server,
-- whatever its default locale, and matches SQLite's.

CREATE TABLE customers (
	id            {{.ID}},
	username      {{.Text}} NOT NULL UNIQUE,
	display_name  {{.Text}} NOT NULL DEFAULT '',
	password_hash {{.Text}} NOT NULL DEFAULT '',
	failures      {{.Int}} NOT NULL DEFAULT 0,
	locked_until  {{.NeverTime}},
	created_at    {{.Time}} NOT NULL
){{.Strict}};

CREATE TABLE numbers (
	number      {{.Key}} PRIMARY KEY,
	customer_id {{.BigInt}} NOT NULL REFERENCES customers (id),
	label       {{.Text}} NOT NULL DEFAULT '',
	created_at  {{.Time}} NOT NULL
){{.Strict}};
CREATE INDEX numbers_customer ON numbers (customer_id);

CREATE TABLE devices (
	id             {{.ID}},
	number         {{.Text}} NOT NULL REFERENCES numbers (number),
	kind           {{.Text}} NOT NULL CHECK (kind IN ('z5', 'sip')),
	name           {{.Text}} NOT NULL DEFAULT '',
	sip_user       {{.Text}} NOT NULL UNIQUE,
	realm          {{.Text}} NOT NULL DEFAULT '',
	ha1_md5        {{.Text}} NOT NULL DEFAULT '',
	ha1_sha256     {{.Text}} NOT NULL DEFAULT '',
	ha1_sha512_256 {{.Text}} NOT NULL DEFAULT '',
	instance_id    {{.Text}} NOT NULL DEFAULT '',
	created_at     {{.Time}} NOT NULL
){{.Strict}};
CREATE INDEX devices_number ON devices (number);

{{/* SQLite's 0001 shipped without the CHECK on sessions.kind (CreateSession
checks it anyway); a released migration stays as it was applied. */ -}}
CREATE TABLE sessions (
	token_hash  {{.Bytes}} PRIMARY KEY,
	kind        {{.Text}} NOT NULL{{if eq .Name "postgres"}} CHECK (kind IN ('zdial', 'mcs')){{end}},
	customer_id {{.BigInt}} NOT NULL REFERENCES customers (id),
	number      {{.Text}} NOT NULL DEFAULT '',
	device_id   {{.BigInt}} NOT NULL DEFAULT 0,
	parent_hash {{.Bytes}},
	created_at  {{.Time}} NOT NULL,
	expires_at  {{.Time}} NOT NULL,
	revoked_at  {{.NeverTime}}
){{.Strict}};
CREATE INDEX sessions_parent ON sessions (parent_hash) WHERE parent_hash IS NOT NULL;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Address books. Owner is not a foreign key: a book is addressed by number
-- and numbers are never deleted, so the constraint would only add coupling.
CREATE TABLE contacts (
	owner         {{.Key}} NOT NULL,
	id            {{.Key}} NOT NULL,
	uid           {{.Text}} NOT NULL,
	name          {{.Text}} NOT NULL DEFAULT '',
	given_name    {{.Text}} NOT NULL DEFAULT '',
	family_name   {{.Text}} NOT NULL DEFAULT '',
	number        {{.Text}} NOT NULL DEFAULT '',
	phones        {{.JSON}},
	email         {{.Text}} NOT NULL DEFAULT '',
	organization  {{.Text}} NOT NULL DEFAULT '',
	note          {{.Text}} NOT NULL DEFAULT '',
	favorite      {{.Bool}} NOT NULL DEFAULT {{.False}},
	version       {{.BigInt}} NOT NULL,
	rev           {{.BigInt}} NOT NULL,
	updated_at    {{.Time}} NOT NULL,
	PRIMARY KEY (owner, id),
	UNIQUE (owner, uid)
){{.Strict}};
CREATE INDEX contacts_rev ON contacts (owner, rev);

-- A deleted contact leaves a tombstone so a CardDAV client that synced
-- before the delete learns about it.
CREATE TABLE contact_tombstones (
	owner {{.Key}} NOT NULL,
	id    {{.Key}} NOT NULL,
	rev   {{.BigInt}} NOT NULL,
	PRIMARY KEY (owner, id)
){{.Strict}};
CREATE INDEX contact_tombstones_rev ON contact_tombstones (owner, rev);

-- The current sync token of each book, bumped by every contact write. Its
-- row is also the lock that orders the writes to one book (see nextRev).
CREATE TABLE book_revs (
	owner {{.Key}} PRIMARY KEY,
	rev   {{.BigInt}} NOT NULL
){{.Strict}};

CREATE TABLE licenses (
	id         {{.Text}} PRIMARY KEY,
	number     {{.Text}} NOT NULL,
	device_id  {{.BigInt}} NOT NULL,
	features   {{.Strings}},
	not_before {{.Time}} NOT NULL,
	not_after  {{.Time}} NOT NULL,
	issued_at  {{.Time}} NOT NULL
){{.Strict}};

-- Registrations are soft state with an expiry, keyed by the flow that
-- carries them (RFC 5626: one device may hold several flows).
CREATE TABLE registrations (
	number     {{.Key}} NOT NULL,
	device_id  {{.BigInt}} NOT NULL,
	node       {{.Key}} NOT NULL,
	flow_id    {{.Key}} NOT NULL,
	contact    {{.Text}} NOT NULL DEFAULT '',
	instance   {{.Text}} NOT NULL DEFAULT '',
	expires_at {{.Time}} NOT NULL,
	updated_at {{.Time}} NOT NULL,
	PRIMARY KEY (number, device_id, node, flow_id)
){{.Strict}};

CREATE TABLE nodes (
	name      {{.Key}} PRIMARY KEY,
	site      {{.Text}} NOT NULL DEFAULT '',
	address   {{.Text}} NOT NULL DEFAULT '',
	healthy   {{.Bool}} NOT NULL DEFAULT {{.False}},
	last_seen {{.Time}} NOT NULL
){{.Strict}};

CREATE TABLE calls (
	call_id     {{.Key}} PRIMARY KEY,
	from_number {{.Text}} NOT NULL DEFAULT '',
	to_number   {{.Text}} NOT NULL DEFAULT '',
	node        {{.Text}} NOT NULL DEFAULT '',
	started_at  {{.Time}} NOT NULL,
	answered_at {{.NeverTime}},
	ended_at    {{.NeverTime}},
	end_reason  {{.Text}} NOT NULL DEFAULT '',
	status      {{.Int}} NOT NULL DEFAULT 0,
	media_stats {{.JSON}}
){{.Strict}};
CREATE INDEX calls_from ON calls (from_number, started_at);
CREATE INDEX calls_to ON calls (to_number, started_at);
CREATE INDEX calls_started ON calls (started_at);
