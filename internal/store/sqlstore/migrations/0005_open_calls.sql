-- The node-lost sweep looks up a node's records still open (ended_at
-- never) every half minute, on a table that only grows.

CREATE INDEX calls_node_ended ON calls (node, ended_at);
