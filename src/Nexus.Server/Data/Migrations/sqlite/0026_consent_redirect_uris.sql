-- The redirect URIs a person consented with, space-separated. A client that registered itself (RFC 7591, a client ID
-- metadata document) chose its redirect URIs itself, and the consent page names only the one of that request: a
-- consent on record lets such a client receive codes silently (and its errors be redirected) only at a redirect URI
-- the person was shown (AuthorizationServer/AuthorizeEndpoint.cs). NULL (a consent from before): none, so the person
-- is asked once more.
ALTER TABLE consents ADD COLUMN redirect_uris TEXT NULL;
