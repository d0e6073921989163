-- The system administrator is a role stored on the account, granted only by something the operator controls
-- (the one-time setup token, the bootstrap API_KEY, or the "users promote" command), never by an email address.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
