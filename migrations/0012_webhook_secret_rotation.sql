-- A rotated webhook secret stays valid for a grace period (`webhooks.secret_grace_secs`):
-- until `previous_secret_until`, deliveries are signed with the new secret and the one it
-- replaced, so receivers can switch over without rejecting anything.
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_until timestamptz;
