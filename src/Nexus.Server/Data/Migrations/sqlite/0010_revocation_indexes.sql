-- Each instance reads what was revoked since its previous read every Nexus:Revocation:PollSeconds
-- (AuthorizationServer/Grants/RevocationList); these partial indexes keep that read to the few revoked rows
-- instead of a scan of every grant, revoked token and client.
CREATE INDEX ix_grants_revoked_at ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX ix_revoked_access_tokens_revoked_at ON revoked_access_tokens (revoked_at);
CREATE INDEX ix_oauth_clients_revoked_at ON oauth_clients (revoked_at) WHERE revoked_at IS NOT NULL;
