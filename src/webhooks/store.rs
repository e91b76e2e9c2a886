//! The webhook tables: endpoints (per user; every query names the user, so one user never
//! reads or changes another's), their deliveries (written by the triggers of
//! `migrations/0011_webhooks.sql`, claimed and settled by the workers) and the attempt log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{DbError, DbPool};

/// Endpoints one user may have.
pub const MAX_ENDPOINTS_PER_USER: i64 = 20;
/// Attempts kept per endpoint in the log.
pub const ATTEMPTS_KEPT: i64 = 100;

/// An endpoint as its owner sees it (never with its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookEndpoint)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    pub consecutive_failures: i32,
    /// Until when the secret replaced by the last rotation still signs (and so is valid);
    /// `None` outside a grace period.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub pending: i64,
    pub dead: i64,
    /// Events dropped unsent because the endpoint's backlog was full (oldest first; see
    /// [`trim_backlogs`]).
    pub dropped: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "e.id, e.url, e.description, e.events, e.paused_at, e.paused_reason, \
     e.consecutive_failures, e.created_at, e.updated_at, e.dropped_events, \
     CASE WHEN e.previous_secret_until > now() THEN e.previous_secret_until END \
         AS previous_secret_valid_until, \
     (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending') AS pending, \
     (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'dead') AS dead";

impl Endpoint {
    fn from_row(row: &Row) -> Self {
        let paused_at: Option<DateTime<Utc>> = row.get("paused_at");
        Self {
            id: row.get("id"),
            url: row.get("url"),
            description: row.get("description"),
            events: row.get("events"),
            paused: paused_at.is_some(),
            paused_at,
            paused_reason: row.get("paused_reason"),
            consecutive_failures: row.get("consecutive_failures"),
            previous_secret_valid_until: row.get("previous_secret_valid_until"),
            pending: row.get("pending"),
            dead: row.get("dead"),
            dropped: row.get("dropped_events"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Creates an endpoint; `None` when the user already has [`MAX_ENDPOINTS_PER_USER`].
pub async fn create(
    pool: &DbPool,
    user_id: Uuid,
    url: &str,
    description: &str,
    events: &[String],
    secret: &str,
) -> Result<Option<Endpoint>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "INSERT INTO webhook_endpoints (id, user_id, url, description, events, secret)
             SELECT $1, $2, $3, $4, $5, $6
              WHERE (SELECT count(*) FROM webhook_endpoints WHERE user_id = $2) < $7
             RETURNING id, url, description, events, paused_at, paused_reason,
                       consecutive_failures, created_at, updated_at, dropped_events,
                       NULL::timestamptz AS previous_secret_valid_until,
                       0::bigint AS pending, 0::bigint AS dead",
            &[
                &Uuid::new_v4(),
                &user_id,
                &url,
                &description,
                &events,
                &secret,
                &MAX_ENDPOINTS_PER_USER,
            ],
        )
        .await?;
    Ok(row.as_ref().map(Endpoint::from_row))
}

pub async fn list(pool: &DbPool, user_id: Uuid) -> Result<Vec<Endpoint>, DbError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.user_id = $1
         ORDER BY e.created_at, e.id"
    );
    let rows = conn.query(sql.as_str(), &[&user_id]).await?;
    Ok(rows.iter().map(Endpoint::from_row).collect())
}

pub async fn get(pool: &DbPool, user_id: Uuid, id: Uuid) -> Result<Option<Endpoint>, DbError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.user_id = $1 AND e.id = $2"
    );
    let row = conn.query_opt(sql.as_str(), &[&user_id, &id]).await?;
    Ok(row.as_ref().map(Endpoint::from_row))
}

/// What a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(false)` resumes a paused endpoint (and forgets its failures in a row).
    pub paused: Option<bool>,
}

pub async fn update(
    pool: &DbPool,
    user_id: Uuid,
    id: Uuid,
    change: &EndpointChange,
) -> Result<Option<Endpoint>, DbError> {
    let conn = pool.get().await?;
    let updated = conn
        .execute(
            "UPDATE webhook_endpoints SET
                    url = COALESCE($3, url),
                    description = COALESCE($4, description),
                    events = COALESCE($5, events),
                    paused_at = CASE WHEN $6::boolean IS NULL THEN paused_at
                                     WHEN $6 THEN COALESCE(paused_at, now()) ELSE NULL END,
                    paused_reason = CASE WHEN $6::boolean IS NULL THEN paused_reason
                                         WHEN $6 THEN COALESCE(paused_reason, 'paused by its owner')
                                         ELSE NULL END,
                    consecutive_failures = CASE WHEN $6 = false THEN 0 ELSE consecutive_failures END,
                    updated_at = now()
              WHERE user_id = $1 AND id = $2",
            &[
                &user_id,
                &id,
                &change.url,
                &change.description,
                &change.events,
                &change.paused,
            ],
        )
        .await?;
    if updated == 0 {
        return Ok(None);
    }
    drop(conn);
    get(pool, user_id, id).await
}

/// What a rotation did.
#[derive(Debug, Clone, Copy)]
pub struct Rotated {
    /// Until when the replaced secret still signs; `None` with no grace period.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// Gives the endpoint `secret`, keeping the one it replaces valid for `grace_secs` (0: not
/// at all); `None` if the user has no such endpoint. Only the secret replaced last is kept:
/// one rotated before it stops signing at once.
pub async fn set_secret(
    pool: &DbPool,
    user_id: Uuid,
    id: Uuid,
    secret: &str,
    grace_secs: f64,
) -> Result<Option<Rotated>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed(
            "UPDATE webhook_endpoints
                SET previous_secret = CASE WHEN $4 > 0 THEN secret END,
                    previous_secret_until = CASE WHEN $4 > 0
                                                 THEN now() + make_interval(secs => $4) END,
                    secret = $3, updated_at = now()
              WHERE user_id = $1 AND id = $2
             RETURNING previous_secret_until",
            &[
                (&user_id, Type::UUID),
                (&id, Type::UUID),
                (&secret, Type::TEXT),
                (&grace_secs, Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.first().map(|row| Rotated {
        previous_valid_until: row.get(0),
    }))
}

/// Where an endpoint's events go and what signs them.
pub struct Target {
    pub url: String,
    pub secret: String,
    /// The replaced secret, while its grace period runs.
    pub previous_secret: Option<String>,
}

/// The endpoint's URL and secrets, for a test ping.
pub async fn target(pool: &DbPool, user_id: Uuid, id: Uuid) -> Result<Option<Target>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT url, secret,
                    CASE WHEN previous_secret_until > now() THEN previous_secret END
               FROM webhook_endpoints WHERE user_id = $1 AND id = $2",
            &[(&user_id, Type::UUID), (&id, Type::UUID)],
        )
        .await?;
    Ok(rows.first().map(|row| Target {
        url: row.get(0),
        secret: row.get(1),
        previous_secret: row.get(2),
    }))
}

/// Deletes the endpoint with its deliveries and attempts.
pub async fn delete(pool: &DbPool, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    let conn = pool.get().await?;
    let deleted = conn
        .execute(
            "DELETE FROM webhook_endpoints WHERE user_id = $1 AND id = $2",
            &[&user_id, &id],
        )
        .await?;
    Ok(deleted == 1)
}

/// One event for one endpoint, as the dead-letter list and the delivery log show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    /// The event as it is sent.
    pub payload: serde_json::Value,
}

pub const MAX_LIST: i64 = 200;

/// The newest deliveries of an endpoint of `user_id`, optionally in one state.
pub async fn deliveries(
    pool: &DbPool,
    user_id: Uuid,
    endpoint_id: Uuid,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryView>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id, event_id, event_type, state, attempts, last_status, last_error,
                    CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at,
                    created_at, delivered_at, dead_at, body::jsonb AS payload
               FROM webhook_deliveries
              WHERE user_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR state = $3)
              ORDER BY seq DESC LIMIT $4",
            &[&user_id, &endpoint_id, &state, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DeliveryView {
            id: row.get("id"),
            event_id: row.get("event_id"),
            event_type: row.get("event_type"),
            state: row.get("state"),
            attempts: row.get("attempts"),
            last_status: row.get("last_status"),
            last_error: row.get("last_error"),
            next_attempt_at: row.get("next_attempt_at"),
            created_at: row.get("created_at"),
            delivered_at: row.get("delivered_at"),
            dead_at: row.get("dead_at"),
            payload: row.get("payload"),
        })
        .collect())
}

/// Puts dead deliveries of an endpoint of `user_id` (one, or all with `None`) back in the
/// queue, due now, with a fresh retry budget; the event keeps its id. Answers how many.
pub async fn replay(
    pool: &DbPool,
    user_id: Uuid,
    endpoint_id: Uuid,
    delivery_id: Option<Uuid>,
) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    let replayed = conn
        .execute(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(),
                    locked_until = NULL, locked_by = NULL, dead_at = NULL,
                    held = EXISTS (SELECT 1 FROM webhook_endpoints e
                                    WHERE e.id = endpoint_id AND e.paused_at IS NOT NULL)
              WHERE user_id = $1 AND endpoint_id = $2 AND state = 'dead'
                AND ($3::uuid IS NULL OR id = $3)",
            &[&user_id, &endpoint_id, &delivery_id],
        )
        .await?;
    if replayed > 0 {
        conn.execute("SELECT pg_notify('botwave_webhooks', '')", &[])
            .await?;
    }
    Ok(replayed)
}

/// One request to a receiver, as the endpoint's log shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookAttempt)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    pub delivery_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

pub async fn attempts(
    pool: &DbPool,
    user_id: Uuid,
    endpoint_id: Uuid,
    limit: i64,
) -> Result<Vec<AttemptView>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT a.at, a.delivery_id, a.event_id, a.event_type, a.status_code, a.latency_ms,
                    a.error
               FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id
              WHERE e.user_id = $1 AND a.endpoint_id = $2
              ORDER BY a.id DESC LIMIT $3",
            &[&user_id, &endpoint_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| AttemptView {
            at: row.get("at"),
            delivery_id: row.get("delivery_id"),
            event_id: row.get("event_id"),
            event_type: row.get("event_type"),
            status_code: row.get("status_code"),
            latency_ms: row.get("latency_ms"),
            error: row.get("error"),
        })
        .collect())
}

/// Logs a test ping's attempt.
pub async fn record_ping(
    pool: &DbPool,
    endpoint_id: Uuid,
    event_id: Uuid,
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<&str>,
) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "INSERT INTO webhook_attempts (endpoint_id, event_id, event_type, status_code, latency_ms, error)
         VALUES ($1, $2, 'webhook.test', $3, $4, $5)",
        &[&endpoint_id, &event_id, &status_code, &latency_ms, &error],
    )
    .await?;
    Ok(())
}

/// A delivery a worker took: it may attempt it until `locked_until`. Not `Debug`: it holds
/// the endpoint's secret, which must never reach a log.
#[derive(Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    /// The replaced secret, while its grace period runs.
    pub previous_secret: Option<String>,
    /// How long ago the event was written (its delivery row made), when it was claimed.
    pub waited: Duration,
}

/// The claim statement of [`claim`], public so a test can look at its plan. Parameters:
/// node, limit, per endpoint, in-flight endpoint ids, their counts, lock seconds.
pub const CLAIM_SQL: &str = "WITH busy AS (
                 SELECT * FROM unnest($4::uuid[], $5::bigint[]) AS b(endpoint_id, n)),
             due AS (
                 SELECT d.id, d.endpoint_id, d.seq,
                        row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.seq) AS rank
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.paused_at IS NULL
                  WHERE d.state = 'pending' AND NOT d.held AND d.next_attempt_at <= now()
                    AND (d.locked_until IS NULL OR d.locked_until < now()
                         OR d.locked_by IN (SELECT incarnation FROM cluster_nodes
                                             WHERE stopped_at IS NOT NULL))
                    AND NOT EXISTS (
                        SELECT 1 FROM webhook_deliveries p
                         WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject
                           AND p.state = 'pending' AND p.seq < d.seq)),
             chosen AS (
                 SELECT due.id FROM due LEFT JOIN busy USING (endpoint_id)
                  WHERE due.rank <= $3 - COALESCE(busy.n, 0)
                  ORDER BY due.seq LIMIT $2),
             locked AS (
                 SELECT d.id FROM webhook_deliveries d WHERE d.id IN (SELECT id FROM chosen)
                    FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d
                SET locked_until = now() + make_interval(secs => $6), locked_by = $1,
                    attempts = d.attempts + 1
               FROM locked, webhook_endpoints e
              WHERE d.id = locked.id AND e.id = d.endpoint_id AND d.state = 'pending'
                AND (d.locked_until IS NULL OR d.locked_until < now()
                     OR d.locked_by IN (SELECT incarnation FROM cluster_nodes
                                         WHERE stopped_at IS NOT NULL))
             RETURNING d.id, d.endpoint_id, d.user_id, d.event_id, d.event_type, d.body,
                       d.attempts, d.seq, e.url, e.secret,
                       CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END
                           AS previous_secret,
                       extract(epoch FROM now() - d.created_at)::float8 AS waited";

/// Takes up to `limit` due deliveries for node `node`, locking each for `lock_secs`. Only
/// deliveries that are not `held` (a paused endpoint's) are read, through the partial index
/// `webhook_deliveries_due_idx`: a paused endpoint's backlog costs the claim nothing. Per
/// endpoint it takes no more than `per_endpoint` minus what this node already has in flight
/// there (`in_flight`: endpoint ids and counts), and of the deliveries of one endpoint about
/// one subject only the oldest still pending: events of a message reach a receiver in order.
/// A lock held by a node that stopped is void at once. Any node may run this at the same time
/// as others: SKIP LOCKED makes them take different rows, and the final UPDATE re-checks that
/// a row is still free, so a delivery is attempted by one node at a time.
pub async fn claim(
    pool: &DbPool,
    node: Uuid,
    limit: i64,
    per_endpoint: i64,
    in_flight: &[(Uuid, i64)],
    lock_secs: f64,
) -> Result<Vec<Claimed>, DbError> {
    let conn = pool.get().await?;
    let busy_ids: Vec<Uuid> = in_flight.iter().map(|(id, _)| *id).collect();
    let busy_counts: Vec<i64> = in_flight.iter().map(|(_, n)| *n).collect();
    let rows = conn
        .query(
            CLAIM_SQL,
            &[
                &node,
                &limit,
                &per_endpoint,
                &busy_ids,
                &busy_counts,
                &lock_secs,
            ],
        )
        .await?;
    let mut claimed: Vec<(i64, Claimed)> = rows
        .iter()
        .map(|row| {
            (
                row.get("seq"),
                Claimed {
                    id: row.get("id"),
                    endpoint_id: row.get("endpoint_id"),
                    user_id: row.get("user_id"),
                    event_id: row.get("event_id"),
                    event_type: row.get("event_type"),
                    body: row.get("body"),
                    attempts: row.get("attempts"),
                    url: row.get("url"),
                    secret: row.get("secret"),
                    previous_secret: row.get("previous_secret"),
                    waited: Duration::try_from_secs_f64(row.get("waited")).unwrap_or_default(),
                },
            )
        })
        .collect();
    claimed.sort_by_key(|(seq, _)| *seq);
    Ok(claimed.into_iter().map(|(_, claimed)| claimed).collect())
}

/// How an attempt ends for its delivery.
#[derive(Debug, Clone, Copy)]
pub enum Settle {
    Delivered,
    /// Due again after `retry_in` seconds.
    Retry {
        retry_in: f64,
    },
    /// Into the dead-letter list.
    Dead,
}

/// What the attempt did to its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointAfter {
    Fine,
    /// This failure paused it.
    JustPaused,
}

/// Records an attempt of `claimed` by `node`: the delivery's new state, the attempt in the
/// log, and the endpoint's failures in a row (pausing it at `pause_after`), in one statement.
/// A delivery whose lock another node took over meanwhile is left to that node.
#[allow(clippy::too_many_arguments)]
pub async fn settle(
    pool: &DbPool,
    node: Uuid,
    claimed: &Claimed,
    settle: Settle,
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<&str>,
    pause_after: i32,
) -> Result<EndpointAfter, DbError> {
    let conn = pool.get().await?;
    let (state, retry_in) = match settle {
        Settle::Delivered => ("delivered", 0.0),
        Settle::Retry { retry_in } => ("pending", retry_in),
        Settle::Dead => ("dead", 0.0),
    };
    let failed = !matches!(settle, Settle::Delivered);
    let row = conn
        .query_one(
            "WITH before AS (
                 SELECT $12::boolean AND paused_at IS NULL
                        AND consecutive_failures + 1 >= $13::int AS pausing
                   FROM webhook_endpoints WHERE id = $8),
             d AS (
                 UPDATE webhook_deliveries
                    SET state = $3::text, locked_until = NULL, locked_by = NULL,
                        last_status = $5::int, last_error = $7::text,
                        next_attempt_at = now() + make_interval(secs => $4),
                        delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END,
                        dead_at = CASE WHEN $3::text = 'dead' THEN now() END
                  WHERE id = $1 AND locked_by = $2 AND attempts = $10 AND state = 'pending'
                 RETURNING id),
             a AS (
                 INSERT INTO webhook_attempts
                        (endpoint_id, delivery_id, event_id, event_type, status_code, latency_ms, error)
                 VALUES ($8, $1, $9, $11, $5::int, $6, $7::text)),
             e AS (
                 UPDATE webhook_endpoints
                    SET consecutive_failures = CASE WHEN $12::boolean THEN consecutive_failures + 1
                                                    ELSE 0 END,
                        paused_at = CASE WHEN (SELECT pausing FROM before) THEN now()
                                         ELSE paused_at END,
                        paused_reason = CASE WHEN (SELECT pausing FROM before)
                                             THEN 'paused after ' || $13::int::text
                                                  || ' failed attempts in a row; last: '
                                                  || COALESCE($7::text, '')
                                             ELSE paused_reason END
                  WHERE id = $8),
             pruned AS (
                 DELETE FROM webhook_attempts
                  WHERE endpoint_id = $8 AND id <= (
                        SELECT id FROM webhook_attempts WHERE endpoint_id = $8
                         ORDER BY id DESC OFFSET $14 LIMIT 1))
             SELECT COALESCE((SELECT pausing FROM before), false) AS just_paused",
            &[
                &claimed.id,
                &node,
                &state,
                &retry_in,
                &status_code,
                &latency_ms,
                &error,
                &claimed.endpoint_id,
                &claimed.event_id,
                &claimed.attempts,
                &claimed.event_type,
                &failed,
                &pause_after,
                &ATTEMPTS_KEPT,
            ],
        )
        .await?;
    Ok(if row.get::<_, bool>("just_paused") {
        EndpointAfter::JustPaused
    } else {
        EndpointAfter::Fine
    })
}

/// Gives up this node's locks (it is stopping): the deliveries are due again at once, for
/// whichever node is up.
pub async fn release(pool: &DbPool, node: Uuid) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE webhook_deliveries SET locked_until = NULL, locked_by = NULL,
                attempts = GREATEST(attempts - 1, 0)
          WHERE locked_by = $1 AND state = 'pending'",
        &[&node],
    )
    .await?;
    Ok(())
}

/// Delivered events are kept this long (for the delivery log), then deleted.
pub const DELIVERED_KEPT_DAYS: i32 = 7;

/// Deletes delivered events older than [`DELIVERED_KEPT_DAYS`]; dead letters stay until the
/// user replays them or deletes the endpoint.
pub async fn prune_delivered(pool: &DbPool) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .execute(
            "DELETE FROM webhook_deliveries
              WHERE state = 'delivered' AND delivered_at < now() - make_interval(days => $1)",
            &[&DELIVERED_KEPT_DAYS],
        )
        .await?)
}

/// Drops the oldest pending deliveries of every endpoint whose backlog exceeds `max_backlog`
/// and adds them to its `dropped_events`, in one statement; answers how many were dropped.
/// Oldest first, because a receiver that comes back wants what is current, and an endpoint
/// can only fall that far behind while it is paused or failing. The per-endpoint counts come
/// from `webhook_deliveries_endpoint_idx`, so this reads only the index where nothing is over.
pub async fn trim_backlogs(pool: &DbPool, max_backlog: i64) -> Result<u64, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "WITH over AS (
                 SELECT endpoint_id, count(*) - $1 AS excess
                   FROM webhook_deliveries WHERE state = 'pending'
                  GROUP BY endpoint_id HAVING count(*) > $1),
             oldest AS (
                 SELECT d.id FROM over o
                  CROSS JOIN LATERAL (
                        SELECT id FROM webhook_deliveries
                         WHERE endpoint_id = o.endpoint_id AND state = 'pending'
                         ORDER BY seq LIMIT o.excess) d),
             dropped AS (
                 DELETE FROM webhook_deliveries d USING oldest
                  WHERE d.id = oldest.id AND d.state = 'pending'
                 RETURNING d.endpoint_id),
             counted AS (
                 UPDATE webhook_endpoints e SET dropped_events = e.dropped_events + n.n
                   FROM (SELECT endpoint_id, count(*) AS n FROM dropped GROUP BY endpoint_id) n
                  WHERE e.id = n.endpoint_id)
             SELECT count(*) FROM dropped",
            &[(&max_backlog, Type::INT8)],
        )
        .await?;
    let dropped: i64 = rows.first().map_or(0, |row| row.get(0));
    Ok(u64::try_from(dropped).unwrap_or(0))
}
