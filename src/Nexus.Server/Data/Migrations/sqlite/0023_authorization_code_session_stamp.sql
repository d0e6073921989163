-- An authorization code remembers the session that approved it (a SHA-256 of the account's security stamp in the
-- session cookie, hex): a code is refused at the token endpoint when the account's stamp changed since (a password
-- reset by an administrator, a sign-out everywhere), so a session ended by a reset cannot mint a new grant on an
-- instance that still trusts it for SessionCheckSeconds (AuthorizationServer/Grants/AuthorizationCodeGrant.cs).
ALTER TABLE authorization_codes ADD COLUMN session_stamp TEXT NULL;
