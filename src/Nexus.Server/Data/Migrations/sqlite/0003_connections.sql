-- Providers an admin registered: a catalog entry (catalog_key) or a custom definition. config is the resolved,
-- secret-free protocol description as JSON (endpoints, PKCE, client authentication); client_secret is
-- encrypted by the key ring.
CREATE TABLE providers (
    name TEXT PRIMARY KEY,
    catalog_key TEXT NULL,
    display_name TEXT NOT NULL,
    auth_mode TEXT NOT NULL,
    config TEXT NOT NULL,
    placeholders TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret BLOB NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Gateway API keys: stored as keyed hashes, bound to the workspaces (JSON array, ["*"] = all) they act for.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    workspaces TEXT NOT NULL,
    can_read_credentials INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NULL
);
CREATE UNIQUE INDEX ux_api_keys_hash ON api_keys (key_hash);

-- Connections of a workspace to a provider. While pending, the row carries the state nonce (single use:
-- state_used_at) and the PKCE verifier (encrypted); once active, the provider's tokens (encrypted).
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    status TEXT NOT NULL,
    scopes TEXT NOT NULL,
    return_url TEXT NOT NULL,
    state_nonce TEXT NULL,
    state_expires_at BIGINT NOT NULL,
    state_used_at BIGINT NULL,
    pkce_verifier BLOB NULL,
    access_token BLOB NULL,
    refresh_token BLOB NULL,
    token_type TEXT NULL,
    token_expires_at BIGINT NULL,
    error TEXT NULL,
    error_description TEXT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ix_connections_workspace ON connections (workspace_id, created_at);
CREATE INDEX ix_connections_provider ON connections (provider_name);
CREATE INDEX ix_connections_pending ON connections (status, state_expires_at);

-- Who did what to which connection. detail is JSON and never holds a secret.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    workspace_id TEXT NULL,
    connection_id TEXT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX ix_audit_events_at ON audit_events (at);
CREATE INDEX ix_audit_events_workspace ON audit_events (workspace_id, at);
CREATE INDEX ix_audit_events_connection ON audit_events (connection_id, at);
