-- Administration: the audit log, session history for analytics, the QR issue time, and the
-- indexes the admin analytics read.

-- One row per admin action. No foreign keys on purpose: the log outlives the accounts it
-- names, so it keeps their ids and emails as they were.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,          -- also the listing cursor: newest = highest
    at            timestamptz NOT NULL DEFAULT now(),
    actor_id      uuid NOT NULL,
    actor_email   text NOT NULL,
    action        text NOT NULL,                  -- e.g. user.disable, session.restart
    target_id     uuid,
    target_email  text,
    details       jsonb NOT NULL DEFAULT '{}'
);

-- When the current QR code was issued, so admins see how long a login has been waiting.
-- Kept by a trigger: whoever writes qr_code (the session actors) needs to know nothing of it.
ALTER TABLE wa_sessions ADD COLUMN qr_issued_at timestamptz;

-- Every state a session entered, and when: "sessions connected per day" needs history that
-- wa_sessions (current state only) does not keep. Also written by a trigger.
CREATE TABLE session_events (
    id       bigserial PRIMARY KEY,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_events_user_idx ON session_events (user_id, at);
CREATE INDEX session_events_at_idx ON session_events (at);

CREATE FUNCTION wa_sessions_track_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.qr_code IS DISTINCT FROM OLD.qr_code THEN
        NEW.qr_issued_at := CASE WHEN NEW.qr_code IS NULL THEN NULL ELSE now() END;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO session_events (user_id, state) VALUES (NEW.user_id, NEW.state);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER wa_sessions_track_changes
    BEFORE INSERT OR UPDATE ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_track_changes();

-- Sessions connected before this migration start their history at connected_since.
INSERT INTO session_events (user_id, state, at)
SELECT user_id, state, coalesce(connected_since, updated_at) FROM wa_sessions;


-- Rollups for the analytics, kept by statement-level triggers on messages so a report reads
-- a few thousand rows instead of scanning every message of the range. A message counts on the
-- UTC day / hour it was created, under its current status.
CREATE TABLE message_stats_daily (
    day       date NOT NULL,
    user_id   uuid NOT NULL,            -- no foreign key: rows go with their user by trigger
    source    text NOT NULL,
    status    text NOT NULL,
    messages  bigint NOT NULL,
    PRIMARY KEY (day, user_id, source, status)
);

CREATE TABLE message_stats_hourly (
    hour      timestamp PRIMARY KEY,    -- UTC, truncated to the hour
    messages  bigint NOT NULL
);

-- Delivery time (delivered_at - sent_at) histogram per creation day, in log-scale buckets
-- (bucket = round(32 * ln(1 + ms)), about 3 % wide): medians without reading every message.
CREATE TABLE message_delivery_latency (
    day       date NOT NULL,
    bucket    integer NOT NULL,
    messages  bigint NOT NULL,
    PRIMARY KEY (day, bucket)
);

CREATE FUNCTION delivery_latency_bucket(sent_at timestamptz, delivered_at timestamptz)
RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT round(32 * ln(1 + greatest(extract(epoch FROM delivered_at - sent_at) * 1000, 0)))::integer
$$;

-- Each trigger writes its rows in key order, so concurrent statements cannot deadlock on
-- them. Deletes only update: a deleted user's rows are not brought back.

CREATE FUNCTION messages_rollup_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_stats_daily AS s (day, user_id, source, status, messages)
    SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, source, status, count(*)
    FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, user_id, source, status) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_stats_hourly AS s (hour, messages)
    SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), count(*)
    FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_delivery_latency AS s (day, bucket, messages)
    SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at), count(*)
    FROM new_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, bucket) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    RETURN NULL;
END;
$$;

CREATE FUNCTION messages_rollup_update() RETURNS trigger
LANGUAGE plpgsql AS $$
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
    INSERT INTO message_stats_hourly AS s (hour, messages)
    SELECT hour, sum(delta)
    FROM (
        SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, -1 AS delta FROM old_rows
        UNION ALL
        SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), 1 FROM new_rows
    ) c
    GROUP BY 1 HAVING sum(delta) <> 0 ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_delivery_latency AS s (day, bucket, messages)
    SELECT day, bucket, sum(delta)
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
               delivery_latency_bucket(sent_at, delivered_at) AS bucket, -1 AS delta
        FROM old_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
        UNION ALL
        SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at), 1
        FROM new_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
    ) c
    GROUP BY 1, 2 HAVING sum(delta) <> 0 ORDER BY 1, 2
    ON CONFLICT (day, bucket) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    RETURN NULL;
END;
$$;

CREATE FUNCTION messages_rollup_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE message_stats_daily s SET messages = s.messages - d.n
    FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, user_id, source, status, count(*) AS n
          FROM old_rows GROUP BY 1, 2, 3, 4) d
    WHERE s.day = d.day AND s.user_id = d.user_id AND s.source = d.source AND s.status = d.status;
    UPDATE message_stats_hourly s SET messages = s.messages - d.n
    FROM (SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, count(*) AS n
          FROM old_rows GROUP BY 1) d
    WHERE s.hour = d.hour;
    UPDATE message_delivery_latency s SET messages = s.messages - d.n
    FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
                 delivery_latency_bucket(sent_at, delivered_at) AS bucket, count(*) AS n
          FROM old_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL GROUP BY 1, 2) d
    WHERE s.day = d.day AND s.bucket = d.bucket;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_rollup_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_rollup_insert();
CREATE TRIGGER messages_rollup_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_rollup_update();
CREATE TRIGGER messages_rollup_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_rollup_delete();

-- A deleted account's per-user rollups go with it.
CREATE FUNCTION users_forget_message_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_stats_daily WHERE user_id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER users_forget_message_stats AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_forget_message_stats();

-- Messages already in the log.
INSERT INTO message_stats_daily (day, user_id, source, status, messages)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, source, status, count(*)
FROM messages GROUP BY 1, 2, 3, 4;
INSERT INTO message_stats_hourly (hour, messages)
SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), count(*) FROM messages GROUP BY 1;
INSERT INTO message_delivery_latency (day, bucket, messages)
SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at), count(*)
FROM messages WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL GROUP BY 1, 2;
