//! Signal protocol state: remote identities, sessions, one-time and signed pre-keys,
//! and group sender keys ([`SignalStore`]).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use wacore::store::error::Result;
use wacore::store::traits::SignalStore;

use super::PgStore;
use super::batch::last_write_wins;
use super::codec::{from_u32, to_array, to_u32};
use super::error::db_err;

/// The `record` column of a row, as the `Bytes` the trait hands out.
/// The two tables that hold one opaque Signal record per address.
#[derive(Clone, Copy)]
enum AddressTable {
    SignalSessions,
    SenderKeys,
}

impl AddressTable {
    fn name(self) -> &'static str {
        match self {
            AddressTable::SignalSessions => "wa_signal_sessions",
            AddressTable::SenderKeys => "wa_sender_keys",
        }
    }
}

impl PgStore {
    /// Upserts `(address, record)` rows in one statement; nothing to write, no round trip.
    async fn upsert_records<'a>(
        &self,
        table: AddressTable,
        rows: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<()> {
        let (addresses, records): (Vec<&str>, Vec<&[u8]>) = rows.into_iter().unzip();
        if addresses.is_empty() {
            return Ok(());
        }
        // The table name is one of two constants; identifiers cannot be bound.
        let sql = format!(
            "INSERT INTO {} (session_id, address, record)
             SELECT $1, address, record FROM UNNEST($2::text[], $3::bytea[]) AS t(address, record)
             ON CONFLICT (session_id, address) DO UPDATE SET record = EXCLUDED.record",
            table.name()
        );
        self.execute(
            &sql,
            &[
                (&addresses, Type::TEXT_ARRAY),
                (&records, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_record(&self, table: AddressTable, address: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE session_id = $1 AND address = $2",
            table.name()
        );
        self.execute(&sql, &[(&address, Type::TEXT)]).await?;
        Ok(())
    }
}

fn record_bytes(row: &Row) -> Result<Bytes> {
    let record: Vec<u8> = row.try_get("record").map_err(db_err)?;
    Ok(Bytes::from(record))
}

/// Half-open range `[start, end)` of the addresses that begin with `prefix`, for an
/// index range scan on a `COLLATE "C"` column. `prefix` ends in an ASCII separator, so
/// bumping that last byte yields the exclusive upper bound.
fn prefix_range(user: &str, separator: char) -> (String, String) {
    let next = char::from(separator as u8 + 1);
    (format!("{user}{separator}"), format!("{user}{next}"))
}

#[async_trait]
impl SignalStore for PgStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_identities (session_id, address, identity_key) VALUES ($1, $2, $3)
             ON CONFLICT (session_id, address) DO UPDATE SET identity_key = EXCLUDED.identity_key",
            &[(&address, Type::TEXT), (&key.as_slice(), Type::BYTEA)],
        )
        .await?;
        Ok(())
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let identities = last_write_wins(identities, |(address, _)| address.clone());
        if identities.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = identities.iter().map(|(a, _)| a.as_ref()).collect();
        let keys: Vec<&[u8]> = identities.iter().map(|(_, k)| k.as_slice()).collect();
        self.execute(
            "INSERT INTO wa_identities (session_id, address, identity_key)
             SELECT $1, address, identity_key FROM UNNEST($2::text[], $3::bytea[]) AS t(address, identity_key)
             ON CONFLICT (session_id, address) DO UPDATE SET identity_key = EXCLUDED.identity_key",
            &[(&addresses, Type::TEXT_ARRAY), (&keys, Type::BYTEA_ARRAY)],
        )
        .await?;
        Ok(())
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let row = self
            .row(
                "SELECT identity_key FROM wa_identities WHERE session_id = $1 AND address = $2",
                &[(&address, Type::TEXT)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key: &[u8] = row.try_get(0).map_err(db_err)?;
        to_array(key, "identity key").map(Some)
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_identities WHERE session_id = $1 AND address = $2",
            &[(&address, Type::TEXT)],
        )
        .await?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        self.row(
            "SELECT record FROM wa_signal_sessions WHERE session_id = $1 AND address = $2",
            &[(&address, Type::TEXT)],
        )
        .await?
        .map(|row| record_bytes(&row))
        .transpose()
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.upsert_records(AddressTable::SignalSessions, [(address, session)])
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let sessions = last_write_wins(sessions, |(address, _)| address.clone());
        self.upsert_records(
            AddressTable::SignalSessions,
            sessions.iter().map(|(a, r)| (a.as_ref(), r.as_ref())),
        )
        .await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete_record(AddressTable::SignalSessions, address)
            .await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let row = self
            .row(
                "SELECT 1 FROM wa_signal_sessions WHERE session_id = $1 AND address = $2",
                &[(&address, Type::TEXT)],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Addresses are "user@server" (device 0) or "user:device@server". ':' sorts
        // before '@', so [user:, userA) encloses both ranges: the index scans that one
        // range and the exact ranges filter out the few bytes in between.
        let (primary_start, primary_end) = prefix_range(user, '@');
        let (device_start, device_end) = prefix_range(user, ':');
        let row = self
            .row(
                "SELECT EXISTS (
                     SELECT 1 FROM wa_signal_sessions
                     WHERE session_id = $1 AND address >= $4 AND address < $3
                       AND ((address >= $2 AND address < $3) OR (address >= $4 AND address < $5))
                 ) OR EXISTS (
                     SELECT 1 FROM wa_identities
                     WHERE session_id = $1 AND address >= $4 AND address < $3
                       AND ((address >= $2 AND address < $3) OR (address >= $4 AND address < $5))
                 )",
                &[
                    (&primary_start, Type::TEXT),
                    (&primary_end, Type::TEXT),
                    (&device_start, Type::TEXT),
                    (&device_end, Type::TEXT),
                ],
            )
            .await?;
        match row {
            Some(row) => row.try_get(0).map_err(db_err),
            None => Ok(false),
        }
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.execute(
            "INSERT INTO wa_prekeys (session_id, prekey_id, record, uploaded) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, prekey_id)
             DO UPDATE SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded",
            &[
                (&from_u32(id), Type::INT8),
                (&record, Type::BYTEA),
                (&uploaded, Type::BOOL),
            ],
        )
        .await?;
        Ok(())
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let keys = last_write_wins(keys, |(id, _)| *id);
        if keys.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = keys.iter().map(|(id, _)| from_u32(*id)).collect();
        let records: Vec<&[u8]> = keys.iter().map(|(_, r)| r.as_ref()).collect();
        self.execute(
            "INSERT INTO wa_prekeys (session_id, prekey_id, record, uploaded)
             SELECT $1, prekey_id, record, $4 FROM UNNEST($2::int8[], $3::bytea[]) AS t(prekey_id, record)
             ON CONFLICT (session_id, prekey_id)
             DO UPDATE SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded",
            &[
                (&ids, Type::INT8_ARRAY),
                (&records, Type::BYTEA_ARRAY),
                (&uploaded, Type::BOOL),
            ],
        )
        .await?;
        Ok(())
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.row(
            "SELECT record FROM wa_prekeys WHERE session_id = $1 AND prekey_id = $2",
            &[(&from_u32(id), Type::INT8)],
        )
        .await?
        .map(|row| record_bytes(&row))
        .transpose()
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<i64> = ids.iter().copied().map(from_u32).collect();
        // `= ANY` is one index probe per id. A join with the ids `WITH ORDINALITY`, which
        // kept their order in SQL, cost three times as much: the client loads every pre-key
        // the server lists at each login (its key bundle digest), about 800 of them.
        let rows = self
            .rows(
                "SELECT prekey_id, record FROM wa_prekeys
                 WHERE session_id = $1 AND prekey_id = ANY($2)",
                &[(&wanted, Type::INT8_ARRAY)],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("prekey_id").map_err(db_err)?;
            found.insert(to_u32(id, "pre-key id")?, record_bytes(row)?);
        }
        // In the order asked for, like a lookup per id would return them.
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).map(|record| (*id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.iter().copied().map(from_u32).collect();
        // UPDATE only: a key consumed since the upload snapshot must stay deleted.
        self.execute(
            "UPDATE wa_prekeys SET uploaded = true WHERE session_id = $1 AND prekey_id = ANY($2)",
            &[(&ids, Type::INT8_ARRAY)],
        )
        .await?;
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.execute(
            "DELETE FROM wa_prekeys WHERE session_id = $1 AND prekey_id = $2",
            &[(&from_u32(id), Type::INT8)],
        )
        .await?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let row = self
            .row(
                "SELECT COALESCE(MAX(prekey_id), 0) FROM wa_prekeys WHERE session_id = $1",
                &[],
            )
            .await?;
        match row {
            Some(row) => to_u32(row.try_get(0).map_err(db_err)?, "pre-key id"),
            None => Ok(0),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO wa_signed_prekeys (session_id, signed_prekey_id, record) VALUES ($1, $2, $3)
             ON CONFLICT (session_id, signed_prekey_id) DO UPDATE SET record = EXCLUDED.record",
            &[(&from_u32(id), Type::INT8), (&record, Type::BYTEA)],
        )
        .await?;
        Ok(())
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.row(
            "SELECT record FROM wa_signed_prekeys WHERE session_id = $1 AND signed_prekey_id = $2",
            &[(&from_u32(id), Type::INT8)],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self
            .rows(
                "SELECT signed_prekey_id, record FROM wa_signed_prekeys
                 WHERE session_id = $1 ORDER BY signed_prekey_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0).map_err(db_err)?;
                let record: Vec<u8> = row.try_get(1).map_err(db_err)?;
                Ok((to_u32(id, "signed pre-key id")?, record))
            })
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.execute(
            "DELETE FROM wa_signed_prekeys WHERE session_id = $1 AND signed_prekey_id = $2",
            &[(&from_u32(id), Type::INT8)],
        )
        .await?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.upsert_records(AddressTable::SenderKeys, [(address, record)])
            .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let sender_keys = last_write_wins(sender_keys, |(address, _)| address.clone());
        self.upsert_records(
            AddressTable::SenderKeys,
            sender_keys.iter().map(|(a, r)| (a.as_ref(), r.as_ref())),
        )
        .await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.row(
            "SELECT record FROM wa_sender_keys WHERE session_id = $1 AND address = $2",
            &[(&address, Type::TEXT)],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete_record(AddressTable::SenderKeys, address).await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_range;

    #[test]
    fn prefix_range_covers_exactly_the_prefixed_addresses() {
        let (start, end) = prefix_range("123", '@');
        let inside = |s: &str| s >= start.as_str() && s < end.as_str();
        assert!(inside("123@s.whatsapp.net"));
        assert!(inside("123@lid"));
        assert!(!inside("1234@s.whatsapp.net"));
        assert!(!inside("123:4@s.whatsapp.net"));
        let (start, end) = prefix_range("123", ':');
        let inside = |s: &str| s >= start.as_str() && s < end.as_str();
        assert!(inside("123:4@s.whatsapp.net"));
        assert!(!inside("123@s.whatsapp.net"));
        assert!(!inside("12:4@s.whatsapp.net"));
    }
}
