-- Nexus user accounts (ASP.NET Core Identity over Dapper).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    normalized_email TEXT NOT NULL UNIQUE,
    email_confirmed INTEGER NOT NULL DEFAULT 0,
    display_name TEXT NULL,
    password_hash TEXT NULL,
    security_stamp TEXT NOT NULL,
    concurrency_stamp TEXT NOT NULL,
    lockout_enabled INTEGER NOT NULL DEFAULT 1,
    lockout_end BIGINT NULL,
    access_failed_count INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- Sign-ins through an upstream identity provider (OIDC), keyed by the provider's subject.
CREATE TABLE user_logins (
    provider TEXT NOT NULL,
    provider_key TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, provider_key)
);

-- OAuth applications (kind = 'application') reuse oauth_clients.
ALTER TABLE oauth_clients ADD COLUMN client_type TEXT NOT NULL DEFAULT 'confidential';
ALTER TABLE oauth_clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN description TEXT NULL;
ALTER TABLE oauth_clients ADD COLUMN base_url TEXT NULL;
ALTER TABLE oauth_clients ADD COLUMN owner_email TEXT NULL;

-- What a user allowed an application to do; asked again only for scopes beyond it.
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- A grant is one authorization: the code it started from, and every refresh and access token issued
-- from it (access tokens carry its id as "gid"). Revoking the grant revokes them all.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_hash TEXT NULL UNIQUE,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NULL,
    revoked_reason TEXT NULL
);
CREATE INDEX ix_grants_user_client ON grants (user_id, client_id);

-- Authorization codes, stored as SHA-256 hashes; single use, short-lived.
CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_challenge TEXT NULL,
    nonce TEXT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT NULL
);

-- Refresh tokens, stored as SHA-256 hashes. Each use rotates: used_at is set and a child is issued; a second
-- use of the same token is a replay and revokes the grant (RFC 9700 §4.14.2).
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NULL
);
CREATE INDEX ix_refresh_tokens_grant ON refresh_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009), kept until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

-- Deployment settings an admin can change at run time.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- ASP.NET Core Data Protection keys (session cookies, antiforgery tokens), shared by every instance and
-- encrypted by the key ring.
CREATE TABLE data_protection_keys (
    name TEXT PRIMARY KEY,
    xml BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
