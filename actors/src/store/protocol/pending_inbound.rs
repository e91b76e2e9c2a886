//! Decrypted inbound messages buffered until the inbound durability hook commits them,
//! so a crash before the commit replays the message instead of losing it.

use tokio_postgres::types::Type;
use wacore::store::error::Result;
use wacore::store::traits::{PendingInboundKey, PendingInboundRow};

use crate::store::PgStore;
use crate::store::batch::last_write_wins;
use crate::store::codec::count;
use crate::store::error::db_err;

/// Buffers the messages in one statement, replacing any with the same key.
pub(super) async fn store(store: &PgStore, rows: &[PendingInboundRow<'_>]) -> Result<()> {
    let rows = last_write_wins(rows, |r| (r.chat, r.sender, r.id));
    if rows.is_empty() {
        return Ok(());
    }
    let now = wacore::time::now_secs();
    let chats: Vec<&str> = rows.iter().map(|r| r.chat).collect();
    let senders: Vec<&str> = rows.iter().map(|r| r.sender).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
    let messages: Vec<&[u8]> = rows.iter().map(|r| r.message).collect();
    store
        .execute(
            "INSERT INTO wa_pending_inbound (session_id, chat, sender, message_id, message, inserted_at)
             SELECT $1, chat, sender, message_id, message, $6
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[]) AS t(chat, sender, message_id, message)
             ON CONFLICT (session_id, chat, sender, message_id)
             DO UPDATE SET message = EXCLUDED.message, inserted_at = EXCLUDED.inserted_at",
            &[
                (&chats, Type::TEXT_ARRAY),
                (&senders, Type::TEXT_ARRAY),
                (&ids, Type::TEXT_ARRAY),
                (&messages, Type::BYTEA_ARRAY),
                (&now, Type::INT8),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn get(
    store: &PgStore,
    chat: &str,
    sender: &str,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    store
        .row(
            "SELECT message FROM wa_pending_inbound
             WHERE session_id = $1 AND chat = $2 AND sender = $3 AND message_id = $4",
            &[
                (&chat, Type::TEXT),
                (&sender, Type::TEXT),
                (&id, Type::TEXT),
            ],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
}

/// Removes the given messages in one statement.
pub(super) async fn delete(store: &PgStore, keys: &[PendingInboundKey<'_>]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let chats: Vec<&str> = keys.iter().map(|k| k.chat).collect();
    let senders: Vec<&str> = keys.iter().map(|k| k.sender).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.id).collect();
    store
        .execute(
            "DELETE FROM wa_pending_inbound p
             USING UNNEST($2::text[], $3::text[], $4::text[]) AS k(chat, sender, message_id)
             WHERE p.session_id = $1
               AND p.chat = k.chat AND p.sender = k.sender AND p.message_id = k.message_id",
            &[
                (&chats, Type::TEXT_ARRAY),
                (&senders, Type::TEXT_ARRAY),
                (&ids, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete_expired(store: &PgStore, cutoff_timestamp: i64) -> Result<u32> {
    let deleted = store
        .execute(
            "DELETE FROM wa_pending_inbound WHERE session_id = $1 AND inserted_at < $2",
            &[(&cutoff_timestamp, Type::INT8)],
        )
        .await?;
    Ok(count(deleted))
}
