-- A paused endpoint's backlog neither slows the claim nor grows without bound.
--
-- Its pending deliveries are `held`: the claim's index covers only deliveries that are not,
-- so claiming reads the due rows of live endpoints whatever a paused one holds. The flag
-- follows the endpoint: set on the deliveries fanned out to a paused endpoint, and on all of
-- its pending ones by the trigger below when it is paused or resumed.
--
-- Every endpoint's backlog is bounded (`webhooks.max_backlog`): the workers drop the oldest
-- pending deliveries beyond it and count them in `dropped_events`, which the user sees.
ALTER TABLE webhook_deliveries ADD COLUMN held boolean NOT NULL DEFAULT false;
ALTER TABLE webhook_endpoints ADD COLUMN dropped_events bigint NOT NULL DEFAULT 0;

UPDATE webhook_deliveries d SET held = true
  FROM webhook_endpoints e
 WHERE e.id = d.endpoint_id AND e.paused_at IS NOT NULL AND d.state = 'pending';

DROP INDEX webhook_deliveries_due_idx;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, seq)
    WHERE state = 'pending' AND NOT held;

CREATE FUNCTION webhook_endpoints_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.paused_at IS NULL) IS DISTINCT FROM (OLD.paused_at IS NULL) THEN
        UPDATE webhook_deliveries SET held = NEW.paused_at IS NOT NULL
         WHERE endpoint_id = NEW.id AND state = 'pending';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_endpoints_hold AFTER UPDATE OF paused_at ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION webhook_endpoints_hold();

-- As in 0011, with `held` for paused endpoints.
CREATE OR REPLACE FUNCTION botwave_webhook_event(owner uuid, type text, subject text, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event uuid := gen_random_uuid();
    created text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event_id, event_type, subject, body, held)
    SELECT gen_random_uuid(), e.id, owner, event, type, subject,
           jsonb_build_object('id', event, 'type', type, 'created_at', created, 'data', data)::text,
           e.paused_at IS NOT NULL
      FROM webhook_endpoints e
     WHERE e.user_id = owner AND type = ANY (e.events)
     ORDER BY e.id;
    IF FOUND THEN
        PERFORM pg_notify('botwave_webhooks', '');
    END IF;
END;
$$;
