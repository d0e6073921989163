-- Disabling an account now revokes its OAuth grants (Accounts/UserAdministration.cs). Accounts disabled before that
-- still hold grants whose access tokens would work until they expire: revoked here, once, as the disable would have.
-- Disabled means lockout_end at DateTimeOffset.MaxValue (any end past 2200 counts; a lockout after failed sign-ins
-- ends within minutes). revoked_at is now, so that every instance's RevocationList picks the grants up.
UPDATE grants SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000, revoked_reason = 'account_disabled'
WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM users WHERE lockout_end >= 7258118400000);
