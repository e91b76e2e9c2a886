//! App-state synchronisation: sync keys, collection versions (ltHash state) and
//! mutation MACs ([`AppSyncStore`]).

use std::collections::HashMap;

use async_trait::async_trait;
use tokio_postgres::types::Type;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::Result;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::PgStore;
use super::batch::last_write_wins;
use super::codec::{from_u64, to_array, to_u64};
use super::error::{corrupt, db_err};

#[async_trait]
impl AppSyncStore for PgStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let row = self
            .row(
                "SELECT key_data, fingerprint, key_timestamp FROM wa_app_state_sync_keys
                 WHERE session_id = $1 AND key_id = $2",
                &[(&key_id, Type::BYTEA)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AppStateSyncKey {
            key_data: row.try_get(0).map_err(db_err)?,
            fingerprint: row.try_get(1).map_err(db_err)?,
            timestamp: row.try_get(2).map_err(db_err)?,
        }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        // Re-storing a key makes it the latest again, so write_seq moves on update too.
        self.execute(
            "INSERT INTO wa_app_state_sync_keys (session_id, key_id, key_data, fingerprint, key_timestamp)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (session_id, key_id) DO UPDATE SET
                 key_data = EXCLUDED.key_data,
                 fingerprint = EXCLUDED.fingerprint,
                 key_timestamp = EXCLUDED.key_timestamp,
                 write_seq = nextval('wa_store_write_seq')",
            &[
                (&key_id, Type::BYTEA),
                (&key.key_data, Type::BYTEA),
                (&key.fingerprint, Type::BYTEA),
                (&key.timestamp, Type::INT8),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.row(
            "SELECT key_id FROM wa_app_state_sync_keys WHERE session_id = $1
             ORDER BY write_seq DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let row = self
            .row(
                "SELECT version, hash, index_macs, value_macs, mac_mismatch_fatal
                 FROM wa_app_state_versions WHERE session_id = $1 AND collection = $2",
                &[(&name, Type::TEXT)],
            )
            .await?;
        let Some(row) = row else {
            return Ok(HashState::default());
        };
        let version: i64 = row.try_get(0).map_err(db_err)?;
        let hash: &[u8] = row.try_get(1).map_err(db_err)?;
        let index_macs: Vec<String> = row.try_get(2).map_err(db_err)?;
        let value_macs: Vec<Vec<u8>> = row.try_get(3).map_err(db_err)?;
        if index_macs.len() != value_macs.len() {
            return Err(corrupt(
                "app-state index map",
                "key and value counts differ",
            ));
        }
        Ok(HashState {
            version: to_u64(version, "app-state version")?,
            hash: to_array(hash, "app-state hash")?,
            index_value_map: index_macs.into_iter().zip(value_macs).collect(),
            mac_mismatch_fatal: row.try_get(4).map_err(db_err)?,
        })
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let version = from_u64(state.version, "app-state version")?;
        let (index_macs, value_macs): (Vec<&str>, Vec<&[u8]>) = state
            .index_value_map
            .iter()
            .map(|(index, value)| (index.as_str(), value.as_slice()))
            .unzip();
        self.execute(
            "INSERT INTO wa_app_state_versions
                 (session_id, collection, version, hash, index_macs, value_macs, mac_mismatch_fatal)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (session_id, collection) DO UPDATE SET
                 version = EXCLUDED.version,
                 hash = EXCLUDED.hash,
                 index_macs = EXCLUDED.index_macs,
                 value_macs = EXCLUDED.value_macs,
                 mac_mismatch_fatal = EXCLUDED.mac_mismatch_fatal",
            &[
                (&name, Type::TEXT),
                (&version, Type::INT8),
                (&state.hash.as_slice(), Type::BYTEA),
                (&index_macs, Type::TEXT_ARRAY),
                (&value_macs, Type::BYTEA_ARRAY),
                (&state.mac_mismatch_fatal, Type::BOOL),
            ],
        )
        .await?;
        Ok(())
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let mutations = last_write_wins(mutations, |m| m.index_mac.clone());
        if mutations.is_empty() {
            return Ok(());
        }
        let version = from_u64(version, "app-state version")?;
        let index_macs: Vec<&[u8]> = mutations.iter().map(|m| m.index_mac.as_slice()).collect();
        let value_macs: Vec<&[u8]> = mutations.iter().map(|m| m.value_mac.as_slice()).collect();
        self.execute(
            "INSERT INTO wa_app_state_mutation_macs (session_id, collection, index_mac, value_mac, version)
             SELECT $1, $2, index_mac, value_mac, $3
             FROM UNNEST($4::bytea[], $5::bytea[]) AS t(index_mac, value_mac)
             ON CONFLICT (session_id, collection, index_mac)
             DO UPDATE SET value_mac = EXCLUDED.value_mac, version = EXCLUDED.version",
            &[
                (&name, Type::TEXT),
                (&version, Type::INT8),
                (&index_macs, Type::BYTEA_ARRAY),
                (&value_macs, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.row(
            "SELECT value_mac FROM wa_app_state_mutation_macs
             WHERE session_id = $1 AND collection = $2 AND index_mac = $3",
            &[(&name, Type::TEXT), (&index_mac, Type::BYTEA)],
        )
        .await?
        .map(|row| row.try_get(0).map_err(db_err))
        .transpose()
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<&[u8]> = index_macs.iter().map(|mac| mac.as_slice()).collect();
        let rows = self
            .rows(
                "SELECT index_mac, value_mac FROM wa_app_state_mutation_macs
                 WHERE session_id = $1 AND collection = $2 AND index_mac = ANY($3)",
                &[(&name, Type::TEXT), (&wanted, Type::BYTEA_ARRAY)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let index_mac: &[u8] = row.try_get(0).map_err(db_err)?;
                let value_mac: Vec<u8> = row.try_get(1).map_err(db_err)?;
                Ok((to_array(index_mac, "mutation index MAC")?, value_mac))
            })
            .collect()
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let doomed: Vec<&[u8]> = index_macs.iter().map(Vec::as_slice).collect();
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs
             WHERE session_id = $1 AND collection = $2 AND index_mac = ANY($3)",
            &[(&name, Type::TEXT), (&doomed, Type::BYTEA_ARRAY)],
        )
        .await?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.execute(
            "DELETE FROM wa_app_state_mutation_macs WHERE session_id = $1 AND collection = $2",
            &[(&name, Type::TEXT)],
        )
        .await?;
        Ok(())
    }
}
