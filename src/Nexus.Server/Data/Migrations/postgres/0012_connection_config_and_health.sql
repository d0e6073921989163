-- Issue 17 (broker completeness).
-- connection_config: the per-connection values of the provider's URL placeholders ({shop}, {instance}, {dc}, …) as
--   a JSON object of strings, validated against the catalog's declaration before they are stored (never a secret).
-- granted_scopes: the scope the provider says it granted (RFC 6749 §5.1 "scope"), space-separated; NULL when the
--   provider did not say, which means the requested scopes were granted.
-- refresh_error_description: the plain-words message of the last transient refresh failure (refresh_error is its code).
-- reconnect_scopes: set while a reconnect (POST /v1/connections/{id}/reconnect) of a connection that keeps its
--   tokens waits for the new consent: the scopes it asks for (possibly empty). NULL otherwise.
ALTER TABLE connections ADD COLUMN connection_config TEXT NULL;
ALTER TABLE connections ADD COLUMN granted_scopes TEXT NULL;
ALTER TABLE connections ADD COLUMN refresh_error_description TEXT NULL;
ALTER TABLE connections ADD COLUMN reconnect_scopes TEXT NULL;
