//! The `messages` table, write side: it is the message log and the send outbox at once.
//! The HTTP layer [`enqueue`]s; the owning session claims rows oldest first, sends them
//! and records what WhatsApp answered. Status only moves forward:
//! queued → sending → sent → delivered → read, or → failed. Moving a message along is
//! the session owner's write, made under its lease ([`Fence`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::PgPool;
use crate::error::SessionError;
use crate::lease::Fence;

/// Where a message came from.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageSource {
    Web,
    Api,
}

impl MessageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Web => "web",
            MessageSource::Api => "api",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "api" {
            MessageSource::Api
        } else {
            MessageSource::Web
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => MessageStatus::Queued,
            "sending" => MessageStatus::Sending,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" => MessageStatus::Failed,
            _ => return None,
        })
    }
}

/// A message to send, as the HTTP layer hands it over.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub user_id: Uuid,
    /// Phone number, digits only, already validated.
    pub recipient: String,
    pub body: String,
    pub source: MessageSource,
    pub api_key_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

/// One row of the message log.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub recipient: String,
    pub body: String,
    pub source: MessageSource,
    pub status: MessageStatus,
    pub wa_message_id: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// While queued: the earliest the number's pacing (or WhatsApp's rate-overlimit answer)
    /// lets it go out; `null`: as soon as the session can (and once it is on its way). The
    /// session plans it anew as it goes, so it is an estimate for all but the next message.
    pub not_before: Option<DateTime<Utc>>,
}

impl Message {
    /// When the message reached its current status.
    pub fn status_at(&self) -> DateTime<Utc> {
        let at = match self.status {
            MessageStatus::Sent => self.sent_at,
            MessageStatus::Delivered => self.delivered_at,
            MessageStatus::Read => self.read_at,
            MessageStatus::Failed => self.failed_at,
            MessageStatus::Queued | MessageStatus::Sending => None,
        };
        at.unwrap_or(self.updated_at)
    }
}

/// Every column [`Message::from_row`] reads.
pub const MESSAGE_COLUMNS: &str = "id, user_id, recipient, body, source, status, wa_message_id, \
     error, attempts, created_at, sent_at, delivered_at, read_at, failed_at, updated_at, not_before";

impl Message {
    /// A row selected with [`MESSAGE_COLUMNS`].
    pub fn from_row(row: &Row) -> Self {
        let status: &str = row.get("status");
        Message {
            id: row.get("id"),
            user_id: row.get("user_id"),
            recipient: row.get("recipient"),
            body: row.get("body"),
            source: MessageSource::parse(row.get("source")),
            // The CHECK constraint admits nothing else.
            status: MessageStatus::parse(status).unwrap_or(MessageStatus::Failed),
            wa_message_id: row.get("wa_message_id"),
            error: row.get("error"),
            attempts: row.get("attempts"),
            created_at: row.get("created_at"),
            sent_at: row.get("sent_at"),
            delivered_at: row.get("delivered_at"),
            read_at: row.get("read_at"),
            failed_at: row.get("failed_at"),
            updated_at: row.get("updated_at"),
            not_before: row.get("not_before"),
        }
    }
}

/// What [`enqueue_for_linked`] made of a send.
#[derive(Debug)]
pub enum Enqueued {
    /// Queued now.
    Created(Message),
    /// The idempotency key was used before: this is the message it queued then.
    Replayed(Message),
    /// The user has no linked WhatsApp account; nothing was queued.
    NotLinked,
    /// The user's plan allows no more messages in this day or month; nothing was stored.
    OverQuota(QuotaExceeded),
}

/// Which quota a refused send ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Day,
    Month,
}

/// A send refused for the plan's quota: the limit, what was used, and when a send passes again
/// (the end of the UTC day or month, by the database's clock).
#[derive(Debug, Clone)]
pub struct QuotaExceeded {
    pub period: QuotaPeriod,
    pub limit: i32,
    pub used: i32,
    pub resets_at: DateTime<Utc>,
}

/// Queues `message` (no quota applies: the session tests and tools use it). With an
/// idempotency key already used by this user, nothing is inserted and the existing row comes
/// back with `false`.
pub async fn enqueue(pool: &PgPool, message: NewMessage) -> Result<(Message, bool), SessionError> {
    match insert(pool, message, false, false).await? {
        Enqueued::Created(message) => Ok((message, true)),
        Enqueued::Replayed(message) => Ok((message, false)),
        Enqueued::NotLinked | Enqueued::OverQuota(_) => Err(SessionError::NotQueued),
    }
}

/// Queues `message` if its user has a linked WhatsApp account and, when `enforce_quota`, if the
/// user's plan allows one more message today and this month: checked, counted and stored in
/// one statement on the way of every send request (a second one only to find an idempotent
/// request's original).
pub async fn enqueue_for_linked(
    pool: &PgPool,
    message: NewMessage,
    enforce_quota: bool,
) -> Result<Enqueued, SessionError> {
    insert(pool, message, true, enforce_quota).await
}

/// The send statement. `plan_usage` is counted by a conditional upsert whose row lock makes
/// concurrent sends of one user take turns (on every node: the lock is in PostgreSQL), and the
/// message is inserted only from the counted row, so a send over quota stores nothing. An
/// idempotent retry (the key exists) and a send without a linked account count nothing.
const SEND_SQL: &str = "
WITH plan AS (
    SELECT p.messages_per_day AS day_limit, p.messages_per_month AS month_limit
    FROM effective_plans e JOIN plans p ON p.id = e.plan_id WHERE e.user_id = $2),
gate AS (
    SELECT (NOT $8 OR EXISTS (
                SELECT 1 FROM wa_sessions s JOIN wa_device d ON d.session_id = s.id
                WHERE s.user_id = $2 AND d.pn IS NOT NULL)) AS linked,
           ($7::text IS NULL OR NOT EXISTS (
                SELECT 1 FROM messages WHERE user_id = $2 AND idempotency_key = $7)) AS fresh),
counted AS (
    INSERT INTO plan_usage AS u (user_id, day, day_count, month, month_count)
    SELECT $2, usage_day(), 1, usage_month(), 1 FROM plan, gate
    WHERE gate.linked AND gate.fresh
      AND (NOT $9 OR (coalesce(plan.day_limit, 1) >= 1 AND coalesce(plan.month_limit, 1) >= 1))
    ON CONFLICT (user_id) DO UPDATE SET
        day_count = CASE WHEN u.day = EXCLUDED.day THEN u.day_count + 1 ELSE 1 END,
        month_count = CASE WHEN u.month = EXCLUDED.month THEN u.month_count + 1 ELSE 1 END,
        day = EXCLUDED.day, month = EXCLUDED.month
    WHERE NOT $9 OR (
        (CASE WHEN u.day = EXCLUDED.day THEN u.day_count ELSE 0 END)
            < coalesce((SELECT day_limit FROM plan), 2147483647)
        AND (CASE WHEN u.month = EXCLUDED.month THEN u.month_count ELSE 0 END)
            < coalesce((SELECT month_limit FROM plan), 2147483647))
    RETURNING 1),
inserted AS (
    INSERT INTO messages (id, user_id, recipient, body, source, api_key_id, idempotency_key)
    SELECT $1, $2, $3, $4, $5, $6, $7 FROM counted
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *)
SELECT inserted.*, EXISTS (SELECT 1 FROM counted) AS counted, gate.linked,
       plan.day_limit, plan.month_limit,
       coalesce((SELECT CASE WHEN day = usage_day() THEN day_count ELSE 0 END
                 FROM plan_usage WHERE user_id = $2), 0) AS day_used,
       coalesce((SELECT CASE WHEN month = usage_month() THEN month_count ELSE 0 END
                 FROM plan_usage WHERE user_id = $2), 0) AS month_used,
       (usage_day() + 1)::timestamp AT TIME ZONE 'UTC' AS day_resets_at,
       (usage_month() + interval '1 month')::timestamp AT TIME ZONE 'UTC' AS month_resets_at
FROM gate CROSS JOIN plan LEFT JOIN inserted ON true";

async fn insert(
    pool: &PgPool,
    message: NewMessage,
    linked_only: bool,
    enforce_quota: bool,
) -> Result<Enqueued, SessionError> {
    let conn = pool.get().await?;
    // A linked account is a stored device with a phone number, as `sessions::status` has it.
    let rows = conn
        .query_cached(
            SEND_SQL,
            &[
                (&Uuid::new_v4(), Type::UUID),
                (&message.user_id, Type::UUID),
                (&message.recipient, Type::TEXT),
                (&message.body, Type::TEXT),
                (&message.source.as_str(), Type::TEXT),
                (&message.api_key_id, Type::UUID),
                (&message.idempotency_key, Type::TEXT),
                (&linked_only, Type::BOOL),
                (&enforce_quota, Type::BOOL),
            ],
        )
        .await?;
    // No row: the user does not exist (the plan join found nothing).
    let Some(row) = rows.first() else {
        return Err(SessionError::NotQueued);
    };
    if row.get::<_, Option<Uuid>>("id").is_some() {
        return Ok(Enqueued::Created(Message::from_row(row)));
    }
    let counted: bool = row.get("counted");
    let linked: bool = row.get("linked");
    // Not inserted: the key was used before (then nothing was counted, unless a concurrent
    // request with the same key inserted first: that count is given back here), nothing is
    // linked, or the quota is used up.
    let existing = match &message.idempotency_key {
        Some(key) => {
            let sql = format!(
                "WITH given_back AS (
                     UPDATE plan_usage SET day_count = greatest(day_count - 1, 0),
                                           month_count = greatest(month_count - 1, 0)
                     WHERE user_id = $1 AND $3)
                 SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = $1 AND idempotency_key = $2"
            );
            conn.query_typed(
                sql.as_str(),
                &[
                    (&message.user_id, Type::UUID),
                    (key, Type::TEXT),
                    (&counted, Type::BOOL),
                ],
            )
            .await?
        }
        None => Vec::new(),
    };
    if let Some(row) = existing.first() {
        return Ok(Enqueued::Replayed(Message::from_row(row)));
    }
    if !linked {
        return Ok(Enqueued::NotLinked);
    }
    if counted {
        // Counted but neither inserted nor found: cannot happen (the conflict is the key's).
        return Err(SessionError::NotQueued);
    }
    Ok(Enqueued::OverQuota(quota_exceeded(row)))
}

/// Which limit refused the send, from the send statement's row.
fn quota_exceeded(row: &Row) -> QuotaExceeded {
    let day_limit: Option<i32> = row.get("day_limit");
    let month_limit: Option<i32> = row.get("month_limit");
    let day_used: i32 = row.get("day_used");
    let month_used: i32 = row.get("month_used");
    let month = month_limit
        .filter(|limit| month_used >= *limit)
        .map(|limit| QuotaExceeded {
            period: QuotaPeriod::Month,
            limit,
            used: month_used,
            resets_at: row.get("month_resets_at"),
        });
    let day = day_limit
        .filter(|limit| day_used >= *limit)
        .map(|limit| QuotaExceeded {
            period: QuotaPeriod::Day,
            limit,
            used: day_used,
            resets_at: row.get("day_resets_at"),
        });
    // The month's reset is the later one: a send passes only once every used-up quota resets.
    month.or(day).unwrap_or(QuotaExceeded {
        period: QuotaPeriod::Day,
        limit: day_limit.unwrap_or(0),
        used: day_used,
        resets_at: row.get("day_resets_at"),
    })
}

/// One message by id, for its owner.
pub async fn get(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<Message>, SessionError> {
    let conn = pool.get().await?;
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = $1 AND id = $2");
    let rows = conn
        .query_typed(sql.as_str(), &[(&user_id, Type::UUID), (&id, Type::UUID)])
        .await?;
    Ok(rows.first().map(Message::from_row))
}

/// A message a session took from its outbox.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub recipient: String,
    pub body: String,
    /// Set when an earlier attempt already chose WhatsApp's id: the retry reuses it, so
    /// the recipient's WhatsApp drops a duplicate instead of showing it twice.
    pub wa_message_id: Option<String>,
    pub attempts: i32,
    pub at: DateTime<Utc>,
}

/// A message the claim left queued with a (new) `not_before`.
#[derive(Clone, Debug)]
pub struct Held {
    pub id: Uuid,
    pub not_before: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// What one claim took and scheduled.
#[derive(Debug, Default)]
pub struct ClaimedBatch {
    /// Marked `sending`, oldest first.
    pub claimed: Vec<Claimed>,
    /// Left queued with a `not_before` that moved (unchanged ones are not rewritten).
    pub held: Vec<Held>,
    /// `Some` when any row came back: the `updated_at` of the account's own pacing
    /// settings then (`None` inside: it has none), so the sender notices a change.
    pub pacing_updated_at: Option<Option<DateTime<Utc>>>,
}

/// Looks at the oldest `limit` messages of `user_id` still to send, in one statement: the
/// first `wa_ids.len()` of them are due and marked `sending` (their `not_before` cleared),
/// each without one given its WhatsApp id from `wa_ids` (the id is stored before anything is
/// sent, so a retry after a crash sends the same id, which the recipient's WhatsApp treats as
/// the same message); the others stay queued with `not_before` from `plan` (the plan of the
/// first one after the due ones, and so on; rewritten only when it moved by a second or
/// more). Answers the claimed ones oldest first.
///
/// A row already `sending` is an attempt a crashed (or moved) session never finished;
/// only the lease holder claims, so it is safe to take it again.
pub async fn claim_batch(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
    limit: usize,
    wa_ids: &[String],
    plan: &[DateTime<Utc>],
) -> Result<ClaimedBatch, SessionError> {
    let limit = limit as i64;
    let due = wa_ids.len() as i64;
    let rows = fenced(
        pool,
        fence,
        "WITH locked AS (
             SELECT id, created_at FROM messages
             WHERE user_id = $1 AND status IN ('queued', 'sending')
             ORDER BY created_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED),
         numbered AS (
             SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM locked),
         pacing AS (
             SELECT (SELECT updated_at FROM user_pacing WHERE user_id = $1) AS updated_at)
         UPDATE messages m SET
                status = CASE WHEN numbered.n <= $4 THEN 'sending' ELSE 'queued' END,
                attempts = m.attempts + CASE WHEN numbered.n <= $4 THEN 1 ELSE 0 END,
                wa_message_id = CASE WHEN numbered.n <= $4
                    THEN COALESCE(m.wa_message_id, ($3::text[])[numbered.n])
                    ELSE m.wa_message_id END,
                not_before = CASE WHEN numbered.n <= $4 THEN NULL
                    ELSE ($5::timestamptz[])[numbered.n - $4] END,
                updated_at = CASE WHEN numbered.n <= $4 OR m.status <> 'queued' THEN now()
                    ELSE m.updated_at END
         FROM numbered, pacing
         WHERE m.id = numbered.id
           AND (numbered.n <= $4 OR m.status <> 'queued'
                OR (m.not_before IS NULL) <> (($5::timestamptz[])[numbered.n - $4] IS NULL)
                OR abs(extract(epoch FROM m.not_before - ($5::timestamptz[])[numbered.n - $4])) >= 1)
         RETURNING m.id, m.recipient, m.body, m.wa_message_id, m.attempts, m.updated_at,
                   m.created_at, m.status, m.not_before, pacing.updated_at AS pacing_updated_at",
        &[
            (&user_id, Type::UUID),
            (&limit, Type::INT8),
            (&wa_ids, Type::TEXT_ARRAY),
            (&due, Type::INT8),
            (&plan, Type::TIMESTAMPTZ_ARRAY),
        ],
    )
    .await?;
    let mut batch = ClaimedBatch {
        pacing_updated_at: rows.first().map(|row| row.get("pacing_updated_at")),
        ..ClaimedBatch::default()
    };
    let mut claimed: Vec<(DateTime<Utc>, Claimed)> = Vec::with_capacity(rows.len());
    for row in &rows {
        let status: &str = row.get("status");
        if status != "sending" {
            batch.held.push(Held {
                id: row.get("id"),
                not_before: row.get("not_before"),
                at: row.get("updated_at"),
            });
            continue;
        }
        let job = Claimed {
            id: row.get("id"),
            recipient: row.get("recipient"),
            body: row.get("body"),
            wa_message_id: row.get("wa_message_id"),
            attempts: row.get("attempts"),
            at: row.get("updated_at"),
        };
        claimed.push((row.get("created_at"), job));
    }
    claimed.sort_by(|(a_at, a), (b_at, b)| (a_at, a.id).cmp(&(b_at, b.id)));
    batch.claimed = claimed.into_iter().map(|(_, claimed)| claimed).collect();
    Ok(batch)
}

/// A message whose status a statement moved, and when.
pub struct Moved {
    pub id: Uuid,
    pub status: MessageStatus,
    pub at: DateTime<Utc>,
    /// How long the stage that ended here took, for the stages that are timed (the
    /// statement's `took` column, in seconds; measured on the database's clock, on which
    /// the stage also began).
    pub took: Option<Duration>,
}

fn moved(rows: &[Row]) -> Vec<Moved> {
    rows.iter()
        .map(|row| {
            let status: &str = row.get("status");
            let took: Option<f64> = row.get("took");
            Moved {
                id: row.get("id"),
                status: MessageStatus::parse(status).unwrap_or(MessageStatus::Failed),
                at: row.get("at"),
                took: took.and_then(|seconds| Duration::try_from_secs_f64(seconds).ok()),
            }
        })
        .collect()
}

/// WhatsApp took these messages. A receipt that raced ahead is not undone.
pub async fn mark_sent(
    pool: &PgPool,
    fence: &Fence,
    ids: &[Uuid],
) -> Result<Vec<Moved>, SessionError> {
    let rows = fenced(
        pool,
        fence,
        "UPDATE messages SET status = 'sent', sent_at = now(), error = NULL, updated_at = now()
         WHERE id = ANY($1) AND status = 'sending'
         RETURNING id, status, sent_at AS at,
                   extract(epoch FROM sent_at - created_at)::float8 AS took",
        &[(&ids, Type::UUID_ARRAY)],
    )
    .await?;
    Ok(moved(&rows))
}

/// These sends could not happen now (connection lost, or WhatsApp asked to slow down):
/// back in the queue, due at `not_before` if given. `attempted` says whether the attempt
/// counts; one that waited behind a failed send in its chat, or that WhatsApp refused as
/// over its rate, gets it back.
pub async fn requeue(
    pool: &PgPool,
    fence: &Fence,
    ids: &[Uuid],
    attempted: bool,
    not_before: Option<DateTime<Utc>>,
) -> Result<Vec<Moved>, SessionError> {
    let rows = fenced(
        pool,
        fence,
        "UPDATE messages SET status = 'queued', updated_at = now(),
                attempts = attempts - CASE WHEN $2 THEN 0 ELSE 1 END,
                not_before = COALESCE($3, not_before)
         WHERE id = ANY($1) AND status = 'sending'
         RETURNING id, status, updated_at AS at, NULL::float8 AS took",
        &[
            (&ids, Type::UUID_ARRAY),
            (&attempted, Type::BOOL),
            (&not_before, Type::TIMESTAMPTZ),
        ],
    )
    .await?;
    Ok(moved(&rows))
}

/// These messages will never go out, each for its reason.
pub async fn mark_failed(
    pool: &PgPool,
    fence: &Fence,
    failures: &[(Uuid, String)],
) -> Result<Vec<Moved>, SessionError> {
    let ids: Vec<Uuid> = failures.iter().map(|(id, _)| *id).collect();
    let reasons: Vec<&str> = failures.iter().map(|(_, reason)| reason.as_str()).collect();
    let rows = fenced(
        pool,
        fence,
        "UPDATE messages m SET status = 'failed', error = f.reason, failed_at = now(),
                updated_at = now()
         FROM unnest($1::uuid[], $2::text[]) AS f(id, reason)
         WHERE m.id = f.id AND m.status IN ('queued', 'sending')
         RETURNING m.id, m.status, m.failed_at AS at, NULL::float8 AS took",
        &[(&ids, Type::UUID_ARRAY), (&reasons, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(moved(&rows))
}

/// Runs one outbox write under the session's lease.
async fn fenced(
    pool: &PgPool,
    fence: &Fence,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, SessionError> {
    fence.write(pool, sql, params).await
}

/// A receipt from the recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    Delivered,
    Read,
}

/// Applies receipts of one kind, each a WhatsApp id of one of `user_id`'s messages and when
/// the receipt came, and returns the rows whose status moved. Read beats delivered, and
/// neither moves a message backwards; a read receipt also fills a missing delivery time, and
/// either fills a missing `sent_at` (a receipt can overtake the record of WhatsApp's ack: it
/// proves the server had the message; no earlier than its claim). WhatsApp stamps receipts in
/// whole seconds, so a receipt time is never put before `sent_at`.
pub async fn apply_receipts(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
    receipt: Receipt,
    receipts: &[(String, DateTime<Utc>)],
) -> Result<Vec<Moved>, SessionError> {
    let sql = match receipt {
        Receipt::Delivered => {
            "UPDATE messages m SET status = 'delivered',
                    sent_at = COALESCE(m.sent_at, GREATEST(r.at, m.updated_at)),
                    delivered_at = COALESCE(m.delivered_at,
                                            GREATEST(r.at, COALESCE(m.sent_at, m.updated_at))),
                    updated_at = now()
             FROM unnest($2::text[], $3::timestamptz[]) AS r(wa_id, at)
             WHERE m.user_id = $1 AND m.wa_message_id = r.wa_id
               AND m.status IN ('sending', 'sent')
             RETURNING m.id, m.status, m.delivered_at AS at,
                       extract(epoch FROM now() - m.sent_at)::float8 AS took"
        }
        Receipt::Read => {
            "UPDATE messages m SET status = 'read',
                    sent_at = COALESCE(m.sent_at, GREATEST(r.at, m.updated_at)),
                    read_at = COALESCE(m.read_at,
                                       GREATEST(r.at, COALESCE(m.sent_at, m.updated_at))),
                    delivered_at = COALESCE(m.delivered_at,
                                            GREATEST(r.at, COALESCE(m.sent_at, m.updated_at))),
                    updated_at = now()
             FROM unnest($2::text[], $3::timestamptz[]) AS r(wa_id, at)
             WHERE m.user_id = $1 AND m.wa_message_id = r.wa_id
               AND m.status IN ('sending', 'sent', 'delivered')
             RETURNING m.id, m.status, m.read_at AS at, NULL::float8 AS took"
        }
    };
    let ids: Vec<&str> = receipts.iter().map(|(id, _)| id.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = receipts.iter().map(|(_, at)| *at).collect();
    let rows = fenced(
        pool,
        fence,
        sql,
        &[
            (&user_id, Type::UUID),
            (&ids, Type::TEXT_ARRAY),
            (&ats, Type::TIMESTAMPTZ_ARRAY),
        ],
    )
    .await?;
    Ok(moved(&rows))
}

/// Which of `users` have messages queued for a few seconds already, and due (not held by
/// pacing until later): their sessions were told (or will be when they connect), unless
/// the notice was lost.
pub async fn users_with_waiting(pool: &PgPool, users: &[Uuid]) -> Result<Vec<Uuid>, SessionError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT DISTINCT user_id FROM messages
              WHERE user_id = ANY($1) AND status = 'queued'
                AND updated_at < now() - interval '5 seconds'
                AND (not_before IS NULL OR not_before <= now())",
            &[(&users, Type::UUID_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
