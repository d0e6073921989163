-- A delivery's attempt in flight holds a lease of its own (leased_until, Unix ms), no longer only a next_attempt_at
-- moved forward: sending a delivery again (which sets next_attempt_at to now) no longer wipes the lease, so another
-- instance cannot claim it while the attempt runs, and the attempt's outcome, written only under its lease, keeps the
-- resend (Notifications/WebhookStore.cs: ClaimAsync, RecordAttemptAsync).
ALTER TABLE webhook_deliveries ADD COLUMN leased_until BIGINT NULL;
