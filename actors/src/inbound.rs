//! The `inbound_messages` table: what contacts send to a linked number. The session that
//! decrypted a message records it under its lease ([`Fence`]); WhatsApp may deliver a message
//! again (a reconnect before the ack), and the unique WhatsApp id makes the repeat a no-op, so
//! it is announced, and its `message.received` webhook written (by the insert's trigger), once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::PgPool;
use crate::error::SessionError;
use crate::lease::Fence;

/// A received message as the API, the dashboard and the websocket show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct InboundMessage {
    pub id: Uuid,
    /// The sender's phone number, digits only (also when WhatsApp addressed it by LID).
    pub from: String,
    /// The chat's JID.
    pub chat: String,
    pub wa_message_id: String,
    /// `text`, or the kind of a message stored as a placeholder (`image`, `sticker`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text, or a placeholder such as `[image]`.
    pub text: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// Every column [`InboundMessage::from_row`] reads.
pub const INBOUND_COLUMNS: &str =
    "id, sender, chat, wa_message_id, kind, body, sent_at, received_at";

impl InboundMessage {
    pub fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            from: row.get("sender"),
            chat: row.get("chat"),
            wa_message_id: row.get("wa_message_id"),
            kind: row.get("kind"),
            text: row.get("body"),
            sent_at: row.get("sent_at"),
            received_at: row.get("received_at"),
        }
    }
}

/// A decrypted message, before it is stored.
#[derive(Clone, Debug)]
pub struct Received<'a> {
    pub wa_message_id: &'a str,
    pub from: &'a str,
    pub chat: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
    pub sent_at: DateTime<Utc>,
}

/// Stores `received` for `user_id`; `None` if this sender already sent a message under this
/// WhatsApp id in this chat.
pub async fn record(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
    received: &Received<'_>,
) -> Result<Option<InboundMessage>, SessionError> {
    let sql = format!(
        "INSERT INTO inbound_messages (id, user_id, wa_message_id, sender, chat, kind, body, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (user_id, chat, sender, wa_message_id) DO NOTHING
         RETURNING {INBOUND_COLUMNS}"
    );
    let id = Uuid::new_v4();
    let rows = fence
        .write(
            pool,
            &sql,
            &[
                (&id, Type::UUID),
                (&user_id, Type::UUID),
                (&received.wa_message_id, Type::TEXT),
                (&received.from, Type::TEXT),
                (&received.chat, Type::TEXT),
                (&received.kind, Type::TEXT),
                (&received.text, Type::TEXT),
                (&received.sent_at, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
    Ok(rows.first().map(InboundMessage::from_row))
}
