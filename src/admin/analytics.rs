//! Usage analytics over a range of days, computed by PostgreSQL in one statement.
//!
//! Definitions (all days are UTC calendar days):
//! - A message counts on the day (and hour) it was created (queued), with the status it has
//!   now: a message sent on Monday and read on Tuesday is one `read` message of Monday.
//! - Delivery rate = (delivered + read) / (sent + delivered + read + failed): of the messages
//!   that left the outbox, the share that reached the phone. Queued and sending messages are
//!   still in flight and left out; `None` when nothing left the outbox.
//! - Median time to delivered: the median of `delivered_at - sent_at` over the range's messages
//!   that have both (read messages included: a read receipt implies delivery), read from a
//!   log-scale histogram, so within about 2 % of the exact value.
//! - Active sessions on a day: accounts whose session was `connected` at any moment of that
//!   day, from the state history in `session_events`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use super::AdminError;
use crate::db::DbPool;

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 366;
/// A report without a range covers this many days, today included.
pub const DEFAULT_DAYS: i64 = 30;
pub const TOP_SENDERS: i64 = 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Report {
    pub from: NaiveDate,
    pub until: NaiveDate,
    pub totals: Totals,
    pub per_day: Vec<DayRow>,
    /// Hour of the day (UTC), 0–23, summed over the range.
    pub per_hour: Vec<HourRow>,
    /// Every account that created messages in the range, busiest first.
    pub per_user: Vec<UserRow>,
    pub top_senders: Vec<UserRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatusCounts {
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SourceCounts {
    pub web: i64,
    pub api: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Totals {
    pub messages: i64,
    pub by_status: StatusCounts,
    pub by_source: SourceCounts,
    pub delivery_rate: Option<f64>,
    pub median_delivery_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DayRow {
    pub day: NaiveDate,
    pub messages: i64,
    pub by_status: StatusCounts,
    pub by_source: SourceCounts,
    pub delivery_rate: Option<f64>,
    pub active_sessions: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct HourRow {
    pub hour: i32,
    pub messages: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UserRow {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub messages: i64,
    pub by_status: StatusCounts,
    pub by_source: SourceCounts,
    pub delivery_rate: Option<f64>,
}

/// $1 first day, $2 last day (inclusive), $3 how many top senders. Reads only the rollups
/// (`message_stats_daily`, `message_stats_hourly`, `message_delivery_latency`) that triggers on
/// `messages` keep current, so its cost follows days × accounts, not messages.
const REPORT_SQL: &str = r#"
WITH days AS (
    SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') d
),
counted AS (
    SELECT day, user_id, source, status, messages AS n
    FROM message_stats_daily
    WHERE day BETWEEN $1::date AND $2::date AND messages <> 0
),
state_spans AS (
    SELECT user_id, state, at AS since,
           coalesce(lead(at) OVER (PARTITION BY user_id ORDER BY at, id), now()) AS until
    FROM session_events
),
active AS (
    SELECT d.day, count(DISTINCT s.user_id)::bigint AS sessions
    FROM days d
    LEFT JOIN state_spans s
      ON s.state = 'connected'
     AND s.since < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
     AND s.until > d.day::timestamp AT TIME ZONE 'UTC'
    GROUP BY d.day
),
latency_buckets AS (
    SELECT bucket, sum(messages) AS n
    FROM message_delivery_latency
    WHERE day BETWEEN $1::date AND $2::date
    GROUP BY bucket
    HAVING sum(messages) > 0
),
latency_cumulative AS (
    SELECT bucket, sum(n) OVER (ORDER BY bucket) AS below, sum(n) OVER () AS total
    FROM latency_buckets
),
latency AS (
    -- The bucket holding the middle message, at its centre: within about 2 % of the median.
    SELECT exp(min(bucket) / 32.0) - 1 AS median_ms
    FROM latency_cumulative
    WHERE below >= total / 2.0
),
per_day AS (
    SELECT d.day,
           coalesce(sum(c.n), 0)::bigint AS messages,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'queued'), 0)::bigint AS queued,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'sending'), 0)::bigint AS sending,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'sent'), 0)::bigint AS sent,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'delivered'), 0)::bigint AS delivered,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'read'), 0)::bigint AS read,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(c.n) FILTER (WHERE c.source = 'web'), 0)::bigint AS web,
           coalesce(sum(c.n) FILTER (WHERE c.source = 'api'), 0)::bigint AS api
    FROM days d
    LEFT JOIN counted c ON c.day = d.day
    GROUP BY d.day
),
per_user AS (
    SELECT c.user_id, coalesce(u.email, '') AS email,
           sum(c.n)::bigint AS messages,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'queued'), 0)::bigint AS queued,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'sending'), 0)::bigint AS sending,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'sent'), 0)::bigint AS sent,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'delivered'), 0)::bigint AS delivered,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'read'), 0)::bigint AS read,
           coalesce(sum(c.n) FILTER (WHERE c.status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(c.n) FILTER (WHERE c.source = 'web'), 0)::bigint AS web,
           coalesce(sum(c.n) FILTER (WHERE c.source = 'api'), 0)::bigint AS api
    FROM counted c
    LEFT JOIN users u ON u.id = c.user_id
    GROUP BY c.user_id, u.email
),
per_hour AS (
    SELECT h AS hour, coalesce(sum(s.messages), 0)::bigint AS messages
    FROM generate_series(0, 23) h
    LEFT JOIN message_stats_hourly s
      ON extract(hour FROM s.hour) = h
     AND s.hour >= $1::date AND s.hour < $2::date + 1
    GROUP BY h
),
totals AS (
    SELECT coalesce(sum(messages), 0)::bigint AS messages,
           coalesce(sum(queued), 0)::bigint AS queued,
           coalesce(sum(sending), 0)::bigint AS sending,
           coalesce(sum(sent), 0)::bigint AS sent,
           coalesce(sum(delivered), 0)::bigint AS delivered,
           coalesce(sum(read), 0)::bigint AS read,
           coalesce(sum(failed), 0)::bigint AS failed,
           coalesce(sum(web), 0)::bigint AS web,
           coalesce(sum(api), 0)::bigint AS api
    FROM per_day
),
-- One JSON object per user, ranked: the whole list and the top senders are two cuts of it.
user_rows AS (
    SELECT json_build_object(
            'user_id', u.user_id,
            'email', u.email,
            'messages', u.messages,
            'by_status', json_build_object('queued', u.queued, 'sending', u.sending,
                'sent', u.sent, 'delivered', u.delivered, 'read', u.read, 'failed', u.failed),
            'by_source', json_build_object('web', u.web, 'api', u.api),
            'delivery_rate', (u.delivered + u.read)::float8
                / nullif(u.sent + u.delivered + u.read + u.failed, 0)) AS entry,
           row_number() OVER (ORDER BY u.messages DESC, u.email) AS rank
    FROM per_user u
)
SELECT json_build_object(
    'from', $1::date,
    'until', $2::date,
    'totals', (
        SELECT json_build_object(
            'messages', t.messages,
            'by_status', json_build_object('queued', t.queued, 'sending', t.sending,
                'sent', t.sent, 'delivered', t.delivered, 'read', t.read, 'failed', t.failed),
            'by_source', json_build_object('web', t.web, 'api', t.api),
            'delivery_rate', (t.delivered + t.read)::float8
                / nullif(t.sent + t.delivered + t.read + t.failed, 0),
            'median_delivery_ms', (SELECT median_ms FROM latency))
        FROM totals t),
    'per_day', (
        SELECT coalesce(json_agg(json_build_object(
            'day', p.day,
            'messages', p.messages,
            'by_status', json_build_object('queued', p.queued, 'sending', p.sending,
                'sent', p.sent, 'delivered', p.delivered, 'read', p.read, 'failed', p.failed),
            'by_source', json_build_object('web', p.web, 'api', p.api),
            'delivery_rate', (p.delivered + p.read)::float8
                / nullif(p.sent + p.delivered + p.read + p.failed, 0),
            'active_sessions', a.sessions) ORDER BY p.day), '[]'::json)
        FROM per_day p JOIN active a ON a.day = p.day),
    'per_hour', (
        SELECT json_agg(json_build_object('hour', hour, 'messages', messages) ORDER BY hour)
        FROM per_hour),
    'per_user', (
        SELECT coalesce(json_agg(entry ORDER BY rank), '[]'::json) FROM user_rows),
    'top_senders', (
        SELECT coalesce(json_agg(entry ORDER BY rank), '[]'::json) FROM user_rows WHERE rank <= $3)
)::text
"#;

/// The report for the days `from` to `until`, both included. The caller validates the range.
pub async fn report(
    pool: &DbPool,
    from: NaiveDate,
    until: NaiveDate,
) -> Result<Report, AdminError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            REPORT_SQL,
            &[
                (&from, Type::DATE),
                (&until, Type::DATE),
                (&TOP_SENDERS, Type::INT8),
            ],
        )
        .await?;
    let json: &str = row.get(0);
    serde_json::from_str(json).map_err(|error| AdminError::Report(error.to_string()))
}

/// The per-day rows as CSV (header first), for spreadsheets.
pub fn per_day_csv(report: &Report) -> String {
    let mut csv = String::from(
        "day,messages,queued,sending,sent,delivered,read,failed,web,api,delivery_rate,active_sessions\n",
    );
    for row in &report.per_day {
        let s = &row.by_status;
        let rate = row
            .delivery_rate
            .map(|rate| format!("{rate:.4}"))
            .unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            row.day,
            row.messages,
            s.queued,
            s.sending,
            s.sent,
            s.delivered,
            s.read,
            s.failed,
            row.by_source.web,
            row.by_source.api,
            rate,
            row.active_sessions
        ));
    }
    csv
}
