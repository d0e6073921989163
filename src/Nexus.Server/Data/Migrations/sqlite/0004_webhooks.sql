-- Endpoints that receive connection events. The signing secret is encrypted (Nexus needs it back to sign).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    workspace_id TEXT NULL,
    secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT NULL
);

-- One row per event and endpoint: the queue and the delivery log at once.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status_code INTEGER NULL,
    last_error TEXT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT NULL
);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX ix_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
