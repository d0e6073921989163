-- Sending a failed delivery again (POST /v1/admin/webhooks/{id}/deliveries/{deliveryId}/retry, or the dashboard's
-- "Send again") gives it the whole retry schedule anew without resetting its attempts, which keep counting every
-- attempt made: schedule_start is the attempts made before the current schedule began (0 until a resend), and the
-- dispatcher places an attempt in the schedule by attempts - schedule_start (Notifications/WebhookDispatcher.cs).
ALTER TABLE webhook_deliveries ADD COLUMN schedule_start INTEGER NOT NULL DEFAULT 0;
