-- Clients of Nexus's own authorization server. kind = 'app_client' (client credentials, the App Clients
-- screen) or 'application' (authorization code, the OAuth Applications tab).
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NULL,
    scopes TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    access_token_lifetime_seconds INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    secret_rotated_at BIGINT NOT NULL,
    revoked_at BIGINT NULL
);
CREATE INDEX ix_oauth_clients_kind ON oauth_clients (kind, created_at);

-- JWS signing keys. private_key is PKCS#8 encrypted by the key ring. A key signs until retired_at and is
-- published in the JWKS until expires_at, so tokens it signed keep verifying after a rotation.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT NULL,
    expires_at BIGINT NULL
);

-- Server-generated secrets (e.g. the key that hashes client secrets), encrypted by the key ring.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
