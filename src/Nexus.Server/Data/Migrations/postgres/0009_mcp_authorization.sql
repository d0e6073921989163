-- RFC 8707 resource indicators: the resource an authorization code and its grant (and so its refresh tokens) are
-- bound to; it becomes the aud of every access token issued from them. NULL means Nexus's own API.
ALTER TABLE authorization_codes ADD COLUMN resource TEXT NULL;
ALTER TABLE grants ADD COLUMN resource TEXT NULL;

-- How an OAuth application came to exist: 'admin' (Site management or the admin API), 'dynamic' (it registered
-- itself, RFC 7591) or 'metadata_document' (its client_id is the URL of its client ID metadata document).
ALTER TABLE oauth_clients ADD COLUMN registration TEXT NOT NULL DEFAULT 'admin';
-- For metadata-document clients: until when the fetched document may be used before it is fetched again.
ALTER TABLE oauth_clients ADD COLUMN metadata_expires_at BIGINT NULL;
