-- A reconnect nobody completes in time ends when its consent window closes (ConnectionStore.ExpireStaleAsync, run
-- on every list of connections): found through this index, which holds only the few rows waiting for a reconnect.
CREATE INDEX ix_connections_reconnecting ON connections (state_expires_at) WHERE reconnect_scopes IS NOT NULL;
