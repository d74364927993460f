-- The interpreter center (internal/acd): interpreters' states and the one
-- queue of relay calls every MCS node shares.

CREATE TABLE acd_agents (
	ca_id   {{.Key}} PRIMARY KEY,
	state   {{.Text}} NOT NULL CHECK (state IN ('not_ready', 'ready', 'offered', 'in_call', 'wrap_up')),
	since   {{.Time}} NOT NULL,
	call_id {{.Text}} NOT NULL DEFAULT ''
){{.Strict}};

CREATE TABLE acd_queue (
	call_id    {{.Key}} PRIMARY KEY,
	node       {{.Text}} NOT NULL,
	priority   {{.Int}} NOT NULL DEFAULT 0,
	queued_at  {{.Time}} NOT NULL,
	state      {{.Text}} NOT NULL CHECK (state IN ('waiting', 'offering')),
	direction  {{.Text}} NOT NULL DEFAULT '',
	dialed     {{.Text}} NOT NULL DEFAULT '',
	user_number {{.Text}} NOT NULL DEFAULT '',
	caller     {{.Text}} NOT NULL DEFAULT '',
	display    {{.Text}} NOT NULL DEFAULT '',
	user_ip    {{.Text}} NOT NULL DEFAULT '',
	location   {{.Text}} NOT NULL DEFAULT ''
){{.Strict}};
CREATE INDEX acd_queue_order ON acd_queue (priority, queued_at);
