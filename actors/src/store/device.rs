//! The paired device: its keys, identity and connection bookkeeping, one row per
//! session in `wa_device` ([`DeviceStore`]).
//!
//! `device_props` and `client_profile` are runtime settings the client applies on
//! every start (they are not part of wacore's persisted device either), so a loaded
//! device gets wacore's defaults for them, as with the SQLite backend.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use wacore::client_profile::ClientProfile;
use wacore::stats::StorageResourceReport;
use wacore::store::Device;
use wacore::store::device::{CachedNoiseCert, CachedServerCertChain, DEVICE_PROPS, account_serde};
use wacore::store::error::Result;
use wacore::store::traits::DeviceStore;

use super::PgStore;
use super::codec::{from_u32, key_pair_bytes, key_pair_from_bytes, to_array, to_u32};
use super::error::{corrupt, db_err};

/// The id `create` reports: a store holds exactly one device, its session's.
const DEVICE_ID: i32 = 1;

const UPSERT_DEVICE: &str = "
    INSERT INTO wa_device (
        session_id, pn, lid, registration_id, noise_key, identity_key, signed_pre_key,
        signed_pre_key_id, signed_pre_key_signature, adv_secret_key, account, push_name,
        app_version_primary, app_version_secondary, app_version_tertiary,
        app_version_last_fetched_ms, edge_routing_info, props_hash, next_pre_key_id,
        first_unupload_pre_key_id, server_has_prekeys, nct_salt,
        cert_intermediate_key, cert_intermediate_not_before, cert_intermediate_not_after,
        cert_leaf_key, cert_leaf_not_before, cert_leaf_not_after,
        login_counter, lid_migrated, last_signed_pre_key_rotation_ms, read_receipts_disabled
    ) VALUES (
        $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32
    )";

const ON_CONFLICT_REPLACE: &str = "
    ON CONFLICT (session_id) DO UPDATE SET
        pn = EXCLUDED.pn,
        lid = EXCLUDED.lid,
        registration_id = EXCLUDED.registration_id,
        noise_key = EXCLUDED.noise_key,
        identity_key = EXCLUDED.identity_key,
        signed_pre_key = EXCLUDED.signed_pre_key,
        signed_pre_key_id = EXCLUDED.signed_pre_key_id,
        signed_pre_key_signature = EXCLUDED.signed_pre_key_signature,
        adv_secret_key = EXCLUDED.adv_secret_key,
        account = EXCLUDED.account,
        push_name = EXCLUDED.push_name,
        app_version_primary = EXCLUDED.app_version_primary,
        app_version_secondary = EXCLUDED.app_version_secondary,
        app_version_tertiary = EXCLUDED.app_version_tertiary,
        app_version_last_fetched_ms = EXCLUDED.app_version_last_fetched_ms,
        edge_routing_info = EXCLUDED.edge_routing_info,
        props_hash = EXCLUDED.props_hash,
        next_pre_key_id = EXCLUDED.next_pre_key_id,
        first_unupload_pre_key_id = EXCLUDED.first_unupload_pre_key_id,
        server_has_prekeys = EXCLUDED.server_has_prekeys,
        nct_salt = EXCLUDED.nct_salt,
        cert_intermediate_key = EXCLUDED.cert_intermediate_key,
        cert_intermediate_not_before = EXCLUDED.cert_intermediate_not_before,
        cert_intermediate_not_after = EXCLUDED.cert_intermediate_not_after,
        cert_leaf_key = EXCLUDED.cert_leaf_key,
        cert_leaf_not_before = EXCLUDED.cert_leaf_not_before,
        cert_leaf_not_after = EXCLUDED.cert_leaf_not_after,
        login_counter = EXCLUDED.login_counter,
        lid_migrated = EXCLUDED.lid_migrated,
        last_signed_pre_key_rotation_ms = EXCLUDED.last_signed_pre_key_rotation_ms,
        read_receipts_disabled = EXCLUDED.read_receipts_disabled,
        updated_at = now()";

const SELECT_DEVICE: &str = "
    SELECT pn, lid, registration_id, noise_key, identity_key, signed_pre_key,
        signed_pre_key_id, signed_pre_key_signature, adv_secret_key, account, push_name,
        app_version_primary, app_version_secondary, app_version_tertiary,
        app_version_last_fetched_ms, edge_routing_info, props_hash, next_pre_key_id,
        first_unupload_pre_key_id, server_has_prekeys, nct_salt,
        cert_intermediate_key, cert_intermediate_not_before, cert_intermediate_not_after,
        cert_leaf_key, cert_leaf_not_before, cert_leaf_not_after,
        login_counter, lid_migrated, last_signed_pre_key_rotation_ms, read_receipts_disabled
    FROM wa_device WHERE session_id = $1";

impl PgStore {
    /// Writes `device` as this session's row; `replace` decides what happens to a row
    /// that is already there.
    async fn write_device(&self, device: &Device, replace: bool) -> Result<()> {
        let pn = device.pn.as_ref().map(ToString::to_string);
        let lid = device.lid.as_ref().map(ToString::to_string);
        let noise_key = key_pair_bytes(&device.noise_key);
        let identity_key = key_pair_bytes(&device.identity_key);
        let signed_pre_key = key_pair_bytes(&device.signed_pre_key);
        let account = device.account.as_deref().map(account_serde::to_bytes);
        let chain = device.server_cert_chain.as_ref();
        let intermediate = chain.map(|c| &c.intermediate);
        let leaf = chain.map(|c| &c.leaf);
        let sql = if replace {
            format!("{UPSERT_DEVICE} {ON_CONFLICT_REPLACE}")
        } else {
            format!("{UPSERT_DEVICE} ON CONFLICT (session_id) DO NOTHING")
        };
        self.execute(
            &sql,
            &[
                (&pn, Type::TEXT),
                (&lid, Type::TEXT),
                (&from_u32(device.registration_id), Type::INT8),
                (&noise_key, Type::BYTEA),
                (&identity_key, Type::BYTEA),
                (&signed_pre_key, Type::BYTEA),
                (&from_u32(device.signed_pre_key_id), Type::INT8),
                (&device.signed_pre_key_signature.as_slice(), Type::BYTEA),
                (&device.adv_secret_key.as_slice(), Type::BYTEA),
                (&account, Type::BYTEA),
                (&device.push_name, Type::TEXT),
                (&from_u32(device.app_version_primary), Type::INT8),
                (&from_u32(device.app_version_secondary), Type::INT8),
                (&from_u32(device.app_version_tertiary), Type::INT8),
                (&device.app_version_last_fetched_ms, Type::INT8),
                (&device.edge_routing_info, Type::BYTEA),
                (&device.props_hash, Type::TEXT),
                (&from_u32(device.next_pre_key_id), Type::INT8),
                (&from_u32(device.first_unupload_pre_key_id), Type::INT8),
                (&device.server_has_prekeys, Type::BOOL),
                (&device.nct_salt, Type::BYTEA),
                (&intermediate.map(|c| c.key.as_slice()), Type::BYTEA),
                (&intermediate.map(|c| c.not_before), Type::INT8),
                (&intermediate.map(|c| c.not_after), Type::INT8),
                (&leaf.map(|c| c.key.as_slice()), Type::BYTEA),
                (&leaf.map(|c| c.not_before), Type::INT8),
                (&leaf.map(|c| c.not_after), Type::INT8),
                (&device.login_counter, Type::INT4),
                (&device.lid_migrated, Type::BOOL),
                (&device.last_signed_pre_key_rotation_ms, Type::INT8),
                (&device.read_receipts_disabled, Type::BOOL),
            ],
        )
        .await?;
        Ok(())
    }
}

/// Typed access to the columns of [`SELECT_DEVICE`], by name.
struct DeviceRow<'a>(&'a Row);

impl<'a> DeviceRow<'a> {
    fn get<T: tokio_postgres::types::FromSql<'a>>(&self, column: &str) -> Result<T> {
        self.0.try_get(column).map_err(db_err)
    }

    fn u32(&self, column: &str) -> Result<u32> {
        to_u32(self.get(column)?, column)
    }

    fn jid(&self, column: &str) -> Result<Option<wacore_binary::Jid>> {
        self.get::<Option<&str>>(column)?
            .map(|text| text.parse().map_err(|e| corrupt(column, e)))
            .transpose()
    }

    fn key_pair(&self, column: &str) -> Result<wacore::libsignal::protocol::KeyPair> {
        key_pair_from_bytes(self.get(column)?, column)
    }

    fn noise_cert(&self, prefix: &str) -> Result<Option<CachedNoiseCert>> {
        let key: Option<&[u8]> = self.get(&format!("{prefix}_key"))?;
        let Some(key) = key else { return Ok(None) };
        let not_before: Option<i64> = self.get(&format!("{prefix}_not_before"))?;
        let not_after: Option<i64> = self.get(&format!("{prefix}_not_after"))?;
        match (not_before, not_after) {
            (Some(not_before), Some(not_after)) => Ok(Some(CachedNoiseCert {
                key: to_array(key, prefix)?,
                not_before,
                not_after,
            })),
            _ => Err(corrupt(prefix, "validity window missing")),
        }
    }

    fn server_cert_chain(&self) -> Result<Option<CachedServerCertChain>> {
        match (
            self.noise_cert("cert_intermediate")?,
            self.noise_cert("cert_leaf")?,
        ) {
            (Some(intermediate), Some(leaf)) => {
                Ok(Some(CachedServerCertChain { intermediate, leaf }))
            }
            (None, None) => Ok(None),
            _ => Err(corrupt("server certificate chain", "only one certificate")),
        }
    }

    fn device(&self) -> Result<Device> {
        let account = self
            .get::<Option<&[u8]>>("account")?
            .map(|bytes| account_serde::from_bytes(bytes).map_err(|e| corrupt("account", e)))
            .transpose()?;
        Ok(Device {
            pn: self.jid("pn")?,
            lid: self.jid("lid")?,
            registration_id: self.u32("registration_id")?,
            noise_key: self.key_pair("noise_key")?,
            identity_key: self.key_pair("identity_key")?,
            signed_pre_key: self.key_pair("signed_pre_key")?,
            signed_pre_key_id: self.u32("signed_pre_key_id")?,
            signed_pre_key_signature: to_array(self.get("signed_pre_key_signature")?, "signature")?,
            adv_secret_key: to_array(self.get("adv_secret_key")?, "adv_secret_key")?,
            account: account.map(Arc::new),
            push_name: self.get("push_name")?,
            app_version_primary: self.u32("app_version_primary")?,
            app_version_secondary: self.u32("app_version_secondary")?,
            app_version_tertiary: self.u32("app_version_tertiary")?,
            app_version_last_fetched_ms: self.get("app_version_last_fetched_ms")?,
            device_props: Arc::new(DEVICE_PROPS.clone()),
            client_profile: ClientProfile::web(),
            edge_routing_info: self.get("edge_routing_info")?,
            props_hash: self.get("props_hash")?,
            next_pre_key_id: self.u32("next_pre_key_id")?,
            first_unupload_pre_key_id: self.u32("first_unupload_pre_key_id")?,
            server_has_prekeys: self.get("server_has_prekeys")?,
            nct_salt: self.get("nct_salt")?,
            nct_salt_sync_seen: false,
            server_cert_chain: self.server_cert_chain()?,
            login_counter: self.get("login_counter")?,
            lid_migrated: self.get("lid_migrated")?,
            last_signed_pre_key_rotation_ms: self.get("last_signed_pre_key_rotation_ms")?,
            read_receipts_disabled: self.get("read_receipts_disabled")?,
        })
    }
}

#[async_trait]
impl DeviceStore for PgStore {
    async fn save(&self, device: &Device) -> Result<()> {
        self.write_device(device, true).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        let row = self.row(SELECT_DEVICE, &[]).await?;
        row.as_ref().map(|row| DeviceRow(row).device()).transpose()
    }

    async fn exists(&self) -> Result<bool> {
        let row = self
            .row("SELECT 1 FROM wa_device WHERE session_id = $1", &[])
            .await?;
        Ok(row.is_some())
    }

    async fn create(&self) -> Result<i32> {
        // Like the in-memory store: materialise a fresh device so `exists` holds, but
        // never replace one that is already there.
        self.write_device(&Device::new(), false).await?;
        Ok(DEVICE_ID)
    }

    async fn resource_report(&self) -> StorageResourceReport {
        // The data lives in PostgreSQL, not in this process.
        StorageResourceReport {
            memory_bytes: Some(0),
            ..StorageResourceReport::default()
        }
    }
}
