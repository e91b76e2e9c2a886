//! Known devices per user, as learnt from usync. The device list itself is stored as
//! JSON of wacore's `DeviceInfo`, whose serde defaults keep older rows readable.

use tokio_postgres::types::Type;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{DeviceInfo, DeviceListRecord};

use crate::store::PgStore;
use crate::store::batch::last_write_wins;
use crate::store::codec::{from_u32, to_u32};
use crate::store::error::{corrupt, db_err};

/// Stores or replaces the records, keyed by user, in one statement.
pub(super) async fn put(store: &PgStore, records: &[DeviceListRecord]) -> Result<()> {
    let records = last_write_wins(records, |r| r.user.as_str());
    if records.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = records.iter().map(|r| r.user.as_str()).collect();
    let devices = records
        .iter()
        .map(|r| serde_json::to_value(&r.devices))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Serialization(Box::new(e)))?;
    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
    let phashes: Vec<Option<&str>> = records.iter().map(|r| r.phash.as_deref()).collect();
    let raw_ids: Vec<Option<i64>> = records.iter().map(|r| r.raw_id.map(from_u32)).collect();
    store
        .execute(
            "INSERT INTO wa_device_lists (session_id, user_id, devices, list_timestamp, phash, raw_id)
             SELECT $1, user_id, devices, list_timestamp, phash, raw_id
             FROM UNNEST($2::text[], $3::jsonb[], $4::int8[], $5::text[], $6::int8[])
                  AS t(user_id, devices, list_timestamp, phash, raw_id)
             ON CONFLICT (session_id, user_id) DO UPDATE SET
                 devices = EXCLUDED.devices,
                 list_timestamp = EXCLUDED.list_timestamp,
                 phash = EXCLUDED.phash,
                 raw_id = EXCLUDED.raw_id",
            &[
                (&users, Type::TEXT_ARRAY),
                (&devices, Type::JSONB_ARRAY),
                (&timestamps, Type::INT8_ARRAY),
                (&phashes, Type::TEXT_ARRAY),
                (&raw_ids, Type::INT8_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn get(store: &PgStore, user: &str) -> Result<Option<DeviceListRecord>> {
    let row = store
        .row(
            "SELECT devices, list_timestamp, phash, raw_id FROM wa_device_lists
             WHERE session_id = $1 AND user_id = $2",
            &[(&user, Type::TEXT)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let devices: serde_json::Value = row.try_get(0).map_err(db_err)?;
    let devices: Vec<DeviceInfo> =
        serde_json::from_value(devices).map_err(|e| corrupt("device list", e))?;
    let raw_id: Option<i64> = row.try_get(3).map_err(db_err)?;
    Ok(Some(DeviceListRecord {
        user: user.to_owned(),
        devices,
        timestamp: row.try_get(1).map_err(db_err)?,
        phash: row.try_get(2).map_err(db_err)?,
        raw_id: raw_id.map(|id| to_u32(id, "raw_id")).transpose()?,
    }))
}

pub(super) async fn delete(store: &PgStore, user: &str) -> Result<()> {
    store
        .execute(
            "DELETE FROM wa_device_lists WHERE session_id = $1 AND user_id = $2",
            &[(&user, Type::TEXT)],
        )
        .await?;
    Ok(())
}
