//! Listing the message log: a user's messages (sent, or with `list_inbound` received), newest first, filtered and paged with an opaque
//! cursor; and the messages whose status moved since a point in time. (Writing — queuing and status changes — and single reads belong to the sessions'
//! outbox in `actors`.)

use base64::Engine;
use botwave_actors::inbound::{INBOUND_COLUMNS, InboundMessage};
use botwave_actors::outbox::{MESSAGE_COLUMNS, Message, MessageSource, MessageStatus};
use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{DbError, DbPool};

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;

#[derive(Debug, Default)]
pub struct LogFilter {
    pub status: Option<MessageStatus>,
    pub recipient: Option<String>,
    pub source: Option<MessageSource>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Where the previous page ended: the last message's creation time and id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    created_at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at.to_rfc3339(),
            self.id
        ))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at, id) = text.split_once('|')?;
        Some(Self {
            created_at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            id: id.parse().ok()?,
        })
    }
}

pub struct Page {
    pub messages: Vec<Message>,
    pub next_cursor: Option<Cursor>,
}

pub async fn list(
    pool: &DbPool,
    user_id: Uuid,
    filter: &LogFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Page, DbError> {
    let conn = pool.get().await?;
    let status = filter.status.map(|s| s.as_str());
    let source = filter.source.map(|s| s.as_str());
    let rows = conn
        .query_typed(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE user_id = $1
                   AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR recipient = $3)
                   AND ($4::text IS NULL OR source = $4)
                   AND ($5::timestamptz IS NULL OR created_at >= $5)
                   AND ($6::timestamptz IS NULL OR created_at < $6)
                   AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8))
                 ORDER BY created_at DESC, id DESC
                 LIMIT $9"
            ),
            &[
                (&user_id, Type::UUID),
                (&status, Type::TEXT),
                (&filter.recipient, Type::TEXT),
                (&source, Type::TEXT),
                (&filter.since, Type::TIMESTAMPTZ),
                (&filter.until, Type::TIMESTAMPTZ),
                (&after.map(|c| c.created_at), Type::TIMESTAMPTZ),
                (&after.map(|c| c.id), Type::UUID),
                (&(limit + 1), Type::INT8),
            ],
        )
        .await?;
    let (messages, next_cursor) =
        page_of(rows.iter().map(Message::from_row).collect(), limit, |m| {
            Cursor {
                created_at: m.created_at,
                id: m.id,
            }
        });
    Ok(Page {
        messages,
        next_cursor,
    })
}

/// `user_id`'s messages whose status (or anything else) changed at or after `since`, oldest
/// change first, at most `limit`.
pub async fn changed_since(
    pool: &DbPool,
    user_id: Uuid,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Message>, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE user_id = $1 AND updated_at >= $2
                 ORDER BY updated_at, id
                 LIMIT $3"
            ),
            &[
                (&user_id, Type::UUID),
                (&since, Type::TIMESTAMPTZ),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    Ok(rows.iter().map(Message::from_row).collect())
}

/// A page of received messages, newest first.
pub struct InboundPage {
    pub messages: Vec<InboundMessage>,
    pub next_cursor: Option<Cursor>,
}

/// `user_id`'s received messages (`GET /api/messages?direction=in`), newest first, optionally
/// from one contact and within a time range (of arrival), paged like the sent ones.
pub async fn list_inbound(
    pool: &DbPool,
    user_id: Uuid,
    filter: &LogFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<InboundPage, DbError> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            &format!(
                "SELECT {INBOUND_COLUMNS} FROM inbound_messages
                 WHERE user_id = $1
                   AND ($2::text IS NULL OR sender = $2)
                   AND ($3::timestamptz IS NULL OR received_at >= $3)
                   AND ($4::timestamptz IS NULL OR received_at < $4)
                   AND ($5::timestamptz IS NULL OR (received_at, id) < ($5, $6))
                 ORDER BY received_at DESC, id DESC
                 LIMIT $7"
            ),
            &[
                &user_id,
                &filter.recipient,
                &filter.since,
                &filter.until,
                &after.map(|c| c.created_at),
                &after.map(|c| c.id),
                &(limit + 1),
            ],
        )
        .await?;
    let (messages, next_cursor) = page_of(
        rows.iter().map(InboundMessage::from_row).collect(),
        limit,
        |m| Cursor {
            created_at: m.received_at,
            id: m.id,
        },
    );
    Ok(InboundPage {
        messages,
        next_cursor,
    })
}

/// Of `limit + 1` rows, the page (the first `limit`) and, if there was one more, the cursor
/// after the page's last row.
fn page_of<T>(
    mut items: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    if items.len() as i64 > limit {
        items.truncate(limit as usize);
        let next = items.last().map(cursor_of);
        (items, next)
    } else {
        (items, None)
    }
}
