-- Nexus as the client of remote MCP servers (RemoteMcp). One dynamic client registration (RFC 7591) per
-- authorization server issuer, reused by every MCP server that server protects, redone when it answers invalid_client.
-- The client secret is encrypted like every stored secret (bound to the issuer).
CREATE TABLE mcp_client_registrations (
    issuer TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_secret BLOB NULL,
    token_endpoint_auth TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Step-up authorization (MCP authorization, scope challenge handling): how many consent rounds the current operation
-- of a connection has started; at most 3, so a server that keeps asking for more cannot loop a person through consent.
ALTER TABLE connections ADD COLUMN authorization_rounds INTEGER NOT NULL DEFAULT 0;
-- The scopes a step-up consent asks for; they replace the connection's scopes when its new tokens arrive.
ALTER TABLE connections ADD COLUMN pending_scopes TEXT NULL;
