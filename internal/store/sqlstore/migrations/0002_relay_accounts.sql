-- Relay calls: account roles and CA IDs, registered locations with their
-- audit trail, and the relay fields of call records.

-- An existing account is a customer. The CA ID is unique among the
-- interpreters that have one ('' for everyone else).
ALTER TABLE customers ADD COLUMN role {{.Text}} NOT NULL DEFAULT 'customer'
	CHECK (role IN ('customer', 'interpreter', 'staff'));
ALTER TABLE customers ADD COLUMN ca_id {{.Text}} NOT NULL DEFAULT '';
CREATE UNIQUE INDEX customers_ca_id ON customers (ca_id) WHERE ca_id <> '';

-- A customer's registered location (civic address), one per customer.
CREATE TABLE locations (
	customer_id {{.BigInt}} PRIMARY KEY REFERENCES customers (id),
	street      {{.Text}} NOT NULL,
	city        {{.Text}} NOT NULL,
	state       {{.Text}} NOT NULL,
	zip         {{.Text}} NOT NULL,
	country     {{.Text}} NOT NULL DEFAULT 'US',
	updated_at  {{.Time}} NOT NULL,
	updated_by  {{.Text}} NOT NULL DEFAULT ''
){{.Strict}};

-- Every change of a registered location: who, when, the address before
-- (NULL when there was none) and after. Not a foreign key: the trail
-- outlives the account.
CREATE TABLE location_audit (
	id          {{.ID}},
	customer_id {{.BigInt}} NOT NULL,
	changed_at  {{.Time}} NOT NULL,
	changed_by  {{.Text}} NOT NULL DEFAULT '',
	old_value   {{.JSON}},
	new_value   {{.JSON}} NOT NULL
){{.Strict}};
CREATE INDEX location_audit_customer ON location_audit (customer_id, id);

-- Relay call records: empty or never for point-to-point calls.
ALTER TABLE calls ADD COLUMN direction {{.Text}} NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN ca_id {{.Text}} NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN dialed {{.Text}} NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN user_number {{.Text}} NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN user_ip {{.Text}} NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN queued_at {{.NeverTime}};
ALTER TABLE calls ADD COLUMN offered_at {{.NeverTime}};
ALTER TABLE calls ADD COLUMN session_start {{.NeverTime}};
ALTER TABLE calls ADD COLUMN session_end {{.NeverTime}};
ALTER TABLE calls ADD COLUMN conversation_start {{.NeverTime}};
ALTER TABLE calls ADD COLUMN conversation_end {{.NeverTime}};
CREATE INDEX calls_queued ON calls (queued_at) WHERE direction <> '';
