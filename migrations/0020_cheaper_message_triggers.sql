-- The `message.status` trigger runs on every insert and status change of `messages`, the
-- hottest table, and built each event's JSON before `botwave_webhook_event` found that the
-- account has no endpoint to deliver it to (most accounts have none). Now the trigger fires
-- only for a change that is news (its WHEN clause is evaluated without calling PL/pgSQL),
-- and looks for a subscribed endpoint before it builds anything. What subscribers receive is
-- unchanged (0019).

CREATE OR REPLACE FUNCTION messages_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    steps constant text[] := ARRAY['sent', 'delivered', 'read'];
    skipped_from integer;
BEGIN
    IF NEW.status = 'sending' OR (TG_OP = 'UPDATE' AND (NEW.status = OLD.status OR NEW.status = 'queued')) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e
                    WHERE e.user_id = NEW.user_id AND 'message.status' = ANY (e.events)) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IN ('delivered', 'read') THEN
        skipped_from := coalesce(array_position(steps, OLD.status), 0) + 1;
        FOR step IN skipped_from .. array_position(steps, NEW.status) - 1 LOOP
            PERFORM botwave_message_status_event(NEW, steps[step]);
        END LOOP;
    END IF;
    PERFORM botwave_message_status_event(NEW, NEW.status);
    RETURN NULL;
END;
$$;

-- One trigger per event, so the update's WHEN can compare with OLD (an insert's cannot).
DROP TRIGGER messages_webhook_event ON messages;
CREATE TRIGGER messages_webhook_event_insert AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.status <> 'sending')
    EXECUTE FUNCTION messages_webhook_event();
CREATE TRIGGER messages_webhook_event_update AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                       AND NEW.status NOT IN ('sending', 'queued'))
    EXECUTE FUNCTION messages_webhook_event();

-- The hourly rollup counts messages by the hour they were created in, so an update moves a
-- message between hours only if it changes `created_at`. Nothing does, and now nothing may
-- (the trigger fires only for an UPDATE that sets the column), so the update trigger leaves
-- the hourly counters alone instead of computing a zero delta on every status change.
CREATE FUNCTION messages_created_at_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'messages.created_at cannot change (message %)', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER messages_created_at_is_fixed BEFORE UPDATE OF created_at ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_created_at_is_fixed();

-- As in 0009, without the hourly counters.
CREATE OR REPLACE FUNCTION messages_rollup_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := botwave_rollup_shard();
BEGIN
    INSERT INTO message_stats_daily AS s (day, user_id, source, status, messages)
    SELECT day, user_id, source, status, sum(delta)
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, user_id, source, status, -1 AS delta
        FROM old_rows
        UNION ALL
        SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, source, status, 1 FROM new_rows
    ) c
    GROUP BY 1, 2, 3, 4 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, user_id, source, status) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_delivery_latency AS s (day, bucket, shard, messages)
    SELECT day, bucket, my_shard, sum(delta)
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
               delivery_latency_bucket(sent_at, delivered_at) AS bucket, -1 AS delta
        FROM old_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
        UNION ALL
        SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at), 1
        FROM new_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
    ) c
    GROUP BY 1, 2 HAVING sum(delta) <> 0 ORDER BY 1, 2
    ON CONFLICT (day, bucket, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    RETURN NULL;
END;
$$;
