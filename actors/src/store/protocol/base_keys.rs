//! Base keys saved while handling a retry receipt, to tell whether the peer answered
//! with the same Signal session (a base-key collision) or a new one.

use tokio_postgres::types::Type;
use wacore::store::error::Result;

use crate::store::PgStore;
use crate::store::error::db_err;

pub(super) async fn save(
    store: &PgStore,
    address: &str,
    message_id: &str,
    base_key: &[u8],
) -> Result<()> {
    store
        .execute(
            "INSERT INTO wa_base_keys (session_id, address, message_id, base_key) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, address, message_id) DO UPDATE SET base_key = EXCLUDED.base_key",
            &[
                (&address, Type::TEXT),
                (&message_id, Type::TEXT),
                (&base_key, Type::BYTEA),
            ],
        )
        .await?;
    Ok(())
}

/// Whether a base key is saved for `(address, message_id)` and equals `current`.
pub(super) async fn is_same(
    store: &PgStore,
    address: &str,
    message_id: &str,
    current: &[u8],
) -> Result<bool> {
    let row = store
        .row(
            "SELECT base_key = $4 FROM wa_base_keys
             WHERE session_id = $1 AND address = $2 AND message_id = $3",
            &[
                (&address, Type::TEXT),
                (&message_id, Type::TEXT),
                (&current, Type::BYTEA),
            ],
        )
        .await?;
    match row {
        Some(row) => row.try_get(0).map_err(db_err),
        None => Ok(false),
    }
}

pub(super) async fn delete(store: &PgStore, address: &str, message_id: &str) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_base_keys WHERE session_id = $1 AND address = $2 AND message_id = $3",
            &[(&address, Type::TEXT), (&message_id, Type::TEXT)],
        )
        .await?;
    Ok(())
}
