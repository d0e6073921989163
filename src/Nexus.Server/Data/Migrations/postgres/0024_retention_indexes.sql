-- Data/Retention removes rows once nothing needs them, every Nexus:Retention:IntervalMinutes, by these columns:
-- expired codes, refresh tokens and revoked token ids, grants by age (finished webhook deliveries by their last
-- attempt, which ix_webhook_deliveries_due (status, next_attempt_at) already serves). Without the indexes each pass
-- would read the whole table.
CREATE INDEX ix_authorization_codes_expires_at ON authorization_codes (expires_at);
CREATE INDEX ix_refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX ix_revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);
CREATE INDEX ix_grants_created_at ON grants (created_at);
