//! Recently sent messages, kept so a retry receipt can re-encrypt and resend them.
//! Time-based pruning is the client's keepalive sweep.

use tokio_postgres::types::Type;
use wacore::store::error::Result;

use crate::store::PgStore;
use crate::store::codec::count;
use crate::store::error::db_err;

pub(super) async fn store(
    store: &PgStore,
    chat_jid: &str,
    message_id: &str,
    payload: &[u8],
) -> Result<()> {
    // The client's clock, like the cutoffs the client later passes in.
    let now = wacore::time::now_secs();
    store
        .execute(
            "INSERT INTO wa_sent_messages (session_id, chat_jid, message_id, payload, sent_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id, chat_jid, message_id)
             DO UPDATE SET payload = EXCLUDED.payload, sent_at = EXCLUDED.sent_at",
            &[
                (&chat_jid, Type::TEXT),
                (&message_id, Type::TEXT),
                (&payload, Type::BYTEA),
                (&now, Type::INT8),
            ],
        )
        .await?;
    Ok(())
}

/// Removes and returns the payload in one statement, so a retry is answered once.
pub(super) async fn take(
    store: &PgStore,
    chat_jid: &str,
    message_id: &str,
) -> Result<Option<Vec<u8>>> {
    store
        .row(
            "DELETE FROM wa_sent_messages
             WHERE session_id = $1 AND chat_jid = $2 AND message_id = $3
             RETURNING payload",
            &[(&chat_jid, Type::TEXT), (&message_id, Type::TEXT)],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
}

pub(super) async fn delete_expired(store: &PgStore, cutoff_timestamp: i64) -> Result<u32> {
    let deleted = store
        .execute(
            "DELETE FROM wa_sent_messages WHERE session_id = $1 AND sent_at < $2",
            &[(&cutoff_timestamp, Type::INT8)],
        )
        .await?;
    Ok(count(deleted))
}
