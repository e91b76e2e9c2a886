-- One row per hour (and per delivery-latency bucket and day) counted every message of the whole
-- installation: every concurrent insert, and every delivery, waited for that row's lock. The
-- counters are split into 16 shards, picked by the database backend that writes, so writers on
-- different connections rarely meet on one row; readers sum the shards (they already sum rows).
-- Per-user counters (message_stats_daily) are not shared between users and stay as they are.

CREATE FUNCTION botwave_rollup_shard() RETURNS smallint
LANGUAGE sql VOLATILE AS $$ SELECT (pg_backend_pid() % 16)::smallint $$;

ALTER TABLE message_stats_hourly ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE message_stats_hourly DROP CONSTRAINT message_stats_hourly_pkey;
ALTER TABLE message_stats_hourly ADD PRIMARY KEY (hour, shard);

ALTER TABLE message_delivery_latency ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE message_delivery_latency DROP CONSTRAINT message_delivery_latency_pkey;
ALTER TABLE message_delivery_latency ADD PRIMARY KEY (day, bucket, shard);

-- Each trigger still writes its rows in key order, so concurrent statements cannot deadlock.
-- Shared counters take deltas (a deletion adds a negative one to this backend's shard).

CREATE OR REPLACE FUNCTION messages_rollup_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := botwave_rollup_shard();
BEGIN
    INSERT INTO message_stats_daily AS s (day, user_id, source, status, messages)
    SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, source, status, count(*)
    FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, user_id, source, status) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_stats_hourly AS s (hour, shard, messages)
    SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), my_shard, count(*)
    FROM new_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_delivery_latency AS s (day, bucket, shard, messages)
    SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at),
           my_shard, count(*)
    FROM new_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, bucket, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    RETURN NULL;
END;
$$;

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
    INSERT INTO message_stats_hourly AS s (hour, shard, messages)
    SELECT hour, my_shard, sum(delta)
    FROM (
        SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC') AS hour, -1 AS delta FROM old_rows
        UNION ALL
        SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), 1 FROM new_rows
    ) c
    GROUP BY 1 HAVING sum(delta) <> 0 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
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

CREATE OR REPLACE FUNCTION messages_rollup_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := botwave_rollup_shard();
BEGIN
    UPDATE message_stats_daily s SET messages = s.messages - d.n
    FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, user_id, source, status, count(*) AS n
          FROM old_rows GROUP BY 1, 2, 3, 4) d
    WHERE s.day = d.day AND s.user_id = d.user_id AND s.source = d.source AND s.status = d.status;
    INSERT INTO message_stats_hourly AS s (hour, shard, messages)
    SELECT date_trunc('hour', created_at AT TIME ZONE 'UTC'), my_shard, -count(*)
    FROM old_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    INSERT INTO message_delivery_latency AS s (day, bucket, shard, messages)
    SELECT (created_at AT TIME ZONE 'UTC')::date, delivery_latency_bucket(sent_at, delivered_at),
           my_shard, -count(*)
    FROM old_rows WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, bucket, shard) DO UPDATE SET messages = s.messages + EXCLUDED.messages;
    RETURN NULL;
END;
$$;
