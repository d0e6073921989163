-- The account at the provider a connection belongs to (an email or login from the provider's userinfo, or the
-- non-secret half of a credential), shown to people in the dashboard. Never a secret.
ALTER TABLE connections ADD COLUMN account TEXT NULL;
