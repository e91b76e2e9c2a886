//! The `messages` table, write side: it is the message log and the send outbox at once.
//! The HTTP layer [`enqueue`]s; the owning session claims rows oldest first, sends them
//! and records what WhatsApp answered. Status only moves forward:
//! queued → sending → sent → delivered → read, or → failed. Moving a message along is
//! the session owner's write, made under its lease ([`Fence`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::PgPool;
use crate::error::SessionError;
use crate::lease::Fence;

/// Where a message came from.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
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

#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Serialize)]
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
     error, attempts, created_at, sent_at, delivered_at, read_at, failed_at, updated_at";

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
        }
    }
}

/// Queues `message`. With an idempotency key already used by this user, nothing is
/// inserted and the existing row comes back with `false`.
pub async fn enqueue(pool: &PgPool, message: NewMessage) -> Result<(Message, bool), SessionError> {
    let conn = pool.get().await?;
    let insert = format!(
        "INSERT INTO messages (id, user_id, recipient, body, source, api_key_id, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING {MESSAGE_COLUMNS}"
    );
    let inserted = conn
        .query_opt(
            insert.as_str(),
            &[
                &Uuid::new_v4(),
                &message.user_id,
                &message.recipient,
                &message.body,
                &message.source.as_str(),
                &message.api_key_id,
                &message.idempotency_key,
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok((Message::from_row(&row), true));
    }
    let existing = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = $1 AND idempotency_key = $2"
    );
    let row = conn
        .query_one(
            existing.as_str(),
            &[&message.user_id, &message.idempotency_key],
        )
        .await?;
    Ok((Message::from_row(&row), false))
}

/// One message by id, for its owner.
pub async fn get(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<Message>, SessionError> {
    let conn = pool.get().await?;
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = $1 AND id = $2");
    let row = conn.query_opt(sql.as_str(), &[&user_id, &id]).await?;
    Ok(row.as_ref().map(Message::from_row))
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

/// Takes the oldest message of `user_id` still to send and marks it `sending`.
///
/// A row already `sending` is an attempt a crashed (or moved) session never finished;
/// only the lease holder claims, so it is safe to take it again.
pub async fn claim_next(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
) -> Result<Option<Claimed>, SessionError> {
    let row = fenced(
        pool,
        fence,
        "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = now()
         WHERE id = (SELECT id FROM messages
                     WHERE user_id = $1 AND status IN ('queued', 'sending')
                     ORDER BY created_at, id LIMIT 1
                     FOR UPDATE SKIP LOCKED)
         RETURNING id, recipient, body, wa_message_id, attempts, updated_at",
        &[(&user_id, Type::UUID)],
    )
    .await?
    .into_iter()
    .next();
    Ok(row.map(|row| Claimed {
        id: row.get("id"),
        recipient: row.get("recipient"),
        body: row.get("body"),
        wa_message_id: row.get("wa_message_id"),
        attempts: row.get("attempts"),
        at: row.get("updated_at"),
    }))
}

/// Records WhatsApp's id for a message before it goes out.
pub async fn assign_wa_id(
    pool: &PgPool,
    fence: &Fence,
    id: Uuid,
    wa_message_id: &str,
) -> Result<(), SessionError> {
    fenced(
        pool,
        fence,
        "UPDATE messages SET wa_message_id = $2, updated_at = now()
         WHERE id = $1 AND wa_message_id IS NULL",
        &[(&id, Type::UUID), (&wa_message_id, Type::TEXT)],
    )
    .await?;
    Ok(())
}

/// The time column of the one row a progress update returned, if it moved.
async fn moved_at(
    pool: &PgPool,
    fence: &Fence,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Option<DateTime<Utc>>, SessionError> {
    let rows = fenced(pool, fence, sql, params).await?;
    Ok(rows.first().map(|row| row.get(0)))
}

/// WhatsApp took the message. A receipt that raced ahead is not undone.
pub async fn mark_sent(
    pool: &PgPool,
    fence: &Fence,
    id: Uuid,
) -> Result<Option<DateTime<Utc>>, SessionError> {
    moved_at(
        pool,
        fence,
        "UPDATE messages SET status = 'sent', sent_at = now(), error = NULL, updated_at = now()
         WHERE id = $1 AND status = 'sending'
         RETURNING sent_at",
        &[(&id, Type::UUID)],
    )
    .await
}

/// The send could not happen now (connection lost): back in the queue.
pub async fn requeue(
    pool: &PgPool,
    fence: &Fence,
    id: Uuid,
) -> Result<Option<DateTime<Utc>>, SessionError> {
    moved_at(
        pool,
        fence,
        "UPDATE messages SET status = 'queued', updated_at = now()
         WHERE id = $1 AND status = 'sending'
         RETURNING updated_at",
        &[(&id, Type::UUID)],
    )
    .await
}

pub async fn mark_failed(
    pool: &PgPool,
    fence: &Fence,
    id: Uuid,
    reason: &str,
) -> Result<Option<DateTime<Utc>>, SessionError> {
    moved_at(
        pool,
        fence,
        "UPDATE messages SET status = 'failed', error = $2, failed_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'sending')
         RETURNING failed_at",
        &[(&id, Type::UUID), (&reason, Type::TEXT)],
    )
    .await
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

/// Applies a receipt for the WhatsApp ids `wa_message_ids` of `user_id`'s messages and
/// returns the rows whose status moved. Read beats delivered, and neither moves a
/// message backwards; a read receipt also fills a missing delivery time. WhatsApp
/// stamps receipts in whole seconds, so a receipt time is never put before `sent_at`.
pub async fn apply_receipt(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
    wa_message_ids: &[String],
    receipt: Receipt,
    at: DateTime<Utc>,
) -> Result<Vec<(Uuid, MessageStatus, DateTime<Utc>)>, SessionError> {
    let sql = match receipt {
        Receipt::Delivered => {
            "UPDATE messages SET status = 'delivered',
                    delivered_at = COALESCE(delivered_at, GREATEST($3, sent_at)),
                    updated_at = now()
             WHERE user_id = $1 AND wa_message_id = ANY($2) AND status IN ('sending', 'sent')
             RETURNING id, status, delivered_at AS at"
        }
        Receipt::Read => {
            "UPDATE messages SET status = 'read', read_at = COALESCE(read_at, GREATEST($3, sent_at)),
                    delivered_at = COALESCE(delivered_at, GREATEST($3, sent_at)), updated_at = now()
             WHERE user_id = $1 AND wa_message_id = ANY($2)
               AND status IN ('sending', 'sent', 'delivered')
             RETURNING id, status, read_at AS at"
        }
    };
    let rows = fenced(
        pool,
        fence,
        sql,
        &[
            (&user_id, Type::UUID),
            (&wa_message_ids, Type::TEXT_ARRAY),
            (&at, Type::TIMESTAMPTZ),
        ],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let status: &str = row.get("status");
            (
                row.get("id"),
                MessageStatus::parse(status).unwrap_or(MessageStatus::Failed),
                row.get("at"),
            )
        })
        .collect())
}

/// Which of `users` have messages queued for a few seconds already: their sessions were
/// told (or will be when they connect), unless the notice was lost.
pub async fn users_with_waiting(pool: &PgPool, users: &[Uuid]) -> Result<Vec<Uuid>, SessionError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT DISTINCT user_id FROM messages
              WHERE user_id = ANY($1) AND status = 'queued'
                AND updated_at < now() - interval '5 seconds'",
            &[(&users, Type::UUID_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
