-- The connection a reconnect started from the dashboard replaces: set (after checking it is in the same workspace)
-- when the new connection is requested, taken once when the new one becomes active, and the old one is then revoked.
-- The replacement happens on the server, never because a URL said so.
ALTER TABLE connections ADD COLUMN replaces_connection_id TEXT NULL;
