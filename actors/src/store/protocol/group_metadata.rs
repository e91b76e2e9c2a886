//! Serialized group metadata snapshots, kept so an unchanged participant hash can skip
//! a full group re-query. The blob is opaque here.

use tokio_postgres::types::Type;
use wacore::store::error::Result;

use crate::store::PgStore;
use crate::store::error::db_err;

pub(super) async fn get(store: &PgStore, group_jid: &str) -> Result<Option<Vec<u8>>> {
    store
        .row(
            "SELECT blob FROM wa_group_metadata WHERE session_id = $1 AND group_jid = $2",
            &[(&group_jid, Type::TEXT)],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
}

pub(super) async fn put(store: &PgStore, group_jid: &str, blob: &[u8]) -> Result<()> {
    store
        .execute(
            "INSERT INTO wa_group_metadata (session_id, group_jid, blob) VALUES ($1, $2, $3)
             ON CONFLICT (session_id, group_jid) DO UPDATE SET blob = EXCLUDED.blob",
            &[(&group_jid, Type::TEXT), (&blob, Type::BYTEA)],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete(store: &PgStore, group_jid: &str) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_group_metadata WHERE session_id = $1 AND group_jid = $2",
            &[(&group_jid, Type::TEXT)],
        )
        .await?;
    Ok(())
}
