-- Issue 15 (Microsoft Entra ID with several resources): the access tokens a connection's refresh token minted for the
-- provider's further resources (Graph, SharePoint, Business Central, …), one row per connection and resource,
-- encrypted like the connection's own tokens (the vault binds each to its connection and resource). A resource's
-- token is refreshed on its own; the connection's refresh token stays in connections.refresh_token.
-- id is "<connection id>:<resource>", the single text key the vault's re-encryption (keys reencrypt) walks by.
CREATE TABLE connection_resource_tokens (
    id TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    access_token BLOB NOT NULL,
    expires_at INTEGER NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX connection_resource_tokens_connection ON connection_resource_tokens (connection_id);
