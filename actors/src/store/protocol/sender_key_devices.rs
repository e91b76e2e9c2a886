//! Which devices of a group hold our current sender key, so a send knows who still
//! needs a sender-key distribution message.

use tokio_postgres::types::Type;
use wacore::store::error::Result;

use crate::store::PgStore;
use crate::store::batch::last_write_wins;
use crate::store::error::db_err;

pub(super) async fn get(store: &PgStore, group_jid: &str) -> Result<Vec<(String, bool)>> {
    let rows = store
        .rows(
            "SELECT device_jid, has_key FROM wa_sender_key_devices
             WHERE session_id = $1 AND group_jid = $2 ORDER BY device_jid",
            &[(&group_jid, Type::TEXT)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(db_err)?,
                row.try_get(1).map_err(db_err)?,
            ))
        })
        .collect()
}

pub(super) async fn set(store: &PgStore, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
    let entries = last_write_wins(entries, |(device_jid, _)| *device_jid);
    if entries.is_empty() {
        return Ok(());
    }
    let device_jids: Vec<&str> = entries.iter().map(|(jid, _)| *jid).collect();
    let has_keys: Vec<bool> = entries.iter().map(|(_, has_key)| *has_key).collect();
    store
        .execute(
            "INSERT INTO wa_sender_key_devices (session_id, group_jid, device_jid, has_key)
             SELECT $1, $2, device_jid, has_key FROM UNNEST($3::text[], $4::bool[]) AS t(device_jid, has_key)
             ON CONFLICT (session_id, group_jid, device_jid) DO UPDATE SET has_key = EXCLUDED.has_key",
            &[
                (&group_jid, Type::TEXT),
                (&device_jids, Type::TEXT_ARRAY),
                (&has_keys, Type::BOOL_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn clear_group(store: &PgStore, group_jid: &str) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_sender_key_devices WHERE session_id = $1 AND group_jid = $2",
            &[(&group_jid, Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// Forgets the given devices in every group.
pub(super) async fn delete_devices(store: &PgStore, device_jids: &[&str]) -> Result<()> {
    if device_jids.is_empty() {
        return Ok(());
    }
    store
        .execute(
            "DELETE FROM wa_sender_key_devices WHERE session_id = $1 AND device_jid = ANY($2)",
            &[(&device_jids, Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(())
}

pub(super) async fn clear_all(store: &PgStore) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_sender_key_devices WHERE session_id = $1",
            &[],
        )
        .await?;
    Ok(())
}
