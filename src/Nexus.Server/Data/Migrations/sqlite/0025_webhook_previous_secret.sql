-- A webhook's secret can be rotated with an overlap: the secret it replaced, encrypted like the secret (its own
-- associated data, webhooks.previous_secret:{id}), goes on signing beside the new one until previous_secret_until
-- (Unix ms), so receivers can move to the new secret without missing a delivery (Notifications/WebhookStore.cs).
ALTER TABLE webhooks ADD COLUMN previous_secret BLOB NULL;
ALTER TABLE webhooks ADD COLUMN previous_secret_until INTEGER NULL;
