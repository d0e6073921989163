-- The refresh engine's bookkeeping on each connection (Connections/Refresh).
-- next_refresh_at: when the background refresher next looks at the connection (Unix ms). New rows get 0, which
--   means "not scheduled yet": the refresher computes the real time on its next pass. NULL means never (a token
--   that neither expires nor can be refreshed).
-- refresh_failures: transient failures in a row (network, timeout, 5xx, 429); while it is above 0,
--   next_refresh_at is the earliest retry, and nobody calls the provider before it.
-- refresh_error: the last transient failure (an error code, never a secret).
-- last_refreshed_at: when a refresh last succeeded.
ALTER TABLE connections ADD COLUMN next_refresh_at BIGINT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN refresh_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN refresh_error TEXT NULL;
ALTER TABLE connections ADD COLUMN last_refreshed_at BIGINT NULL;
CREATE INDEX ix_connections_refresh ON connections (status, next_refresh_at);
