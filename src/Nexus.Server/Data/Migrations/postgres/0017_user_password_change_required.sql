-- A password someone else chose (an administrator's reset, or the temporary password `users create` generates) has to
-- be replaced by its owner: while password_change_required is 1, the account's session reaches only the page that
-- changes the password (Accounts/PasswordChange.cs). Changing it clears the flag.
ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0;
