-- A log of devices whose credentials were replaced or that were deleted,
-- by SIP user: every MCS node follows it to drop those devices from its
-- cache of the digest checks (sipserver/devcache.go). Kept short: each
-- write trims it to its last 10,000 entries.

CREATE TABLE device_changes (
	seq      {{.ID}},
	sip_user {{.Text}} NOT NULL
){{.Strict}};
