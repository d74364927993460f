-- A relay call whose interpreter's connection was lost mid-call: the
-- caller calls again, queued first, and that call's record names the one
-- it continues.

ALTER TABLE calls ADD COLUMN requeue_of {{.Text}} NOT NULL DEFAULT '';
