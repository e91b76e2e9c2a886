//! PostgreSQL storage backend for whatsapp-rust: [`PgStore`] implements wacore's
//! storage [`Backend`](wacore::store::traits::Backend) on the shared [`PgPool`], one
//! namespace per botwave WhatsApp session.
//!
//! Every row carries the `session_id` the store was built with, and every query filters
//! on it, so two sessions on the same database never see each other's state. The schema
//! lives in `migrations/0002_whatsapp_store.sql`.
//!
//! Queries go through `query_typed`/`execute_typed`: parameter types are spelled out, so
//! the unnamed statement is parsed, bound and executed in a single round trip. That is
//! what a prepared-statement cache would save, and it needs none: the pool hands out
//! plain `tokio_postgres::Client`s, which have no per-connection statement cache, and a
//! prepared statement is only valid on the connection that prepared it.
//!
//! Every statement runs under the session's [`Fence`]: the store refuses to touch the
//! database once the lease is lost here, and the database refuses a write whose fence is
//! not the session's current lease (a node that was frozen or cut off must not write a
//! Signal ratchet the new owner has moved past: that would break the session's
//! encryption for good).
//!
//! The trait implementations are split by domain: `device`, `signal`,
//! `app_state`, `protocol` (with its own submodules) and `msg_secret`.

mod app_state;
mod batch;
mod codec;
mod device;
mod error;
mod msg_secret;
mod protocol;
mod signal;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use bb8::PooledConnection;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;
use wacore::store::error::{Result, StoreError};

use crate::PgPool;
use crate::db::{Param, PgManager};
use crate::lease::Fence;
use error::{db_err, fence_err, pool_err};

/// A connection checked out of the pool.
type Conn<'a> = PooledConnection<'a, PgManager>;

/// Every table holding a session's WhatsApp state, for [`PgStore::delete_all`].
const TABLES: [&str; 18] = [
    "wa_device",
    "wa_identities",
    "wa_signal_sessions",
    "wa_prekeys",
    "wa_signed_prekeys",
    "wa_sender_keys",
    "wa_app_state_sync_keys",
    "wa_app_state_versions",
    "wa_app_state_mutation_macs",
    "wa_sender_key_devices",
    "wa_lid_pn_mappings",
    "wa_base_keys",
    "wa_device_lists",
    "wa_group_metadata",
    "wa_tc_tokens",
    "wa_sent_messages",
    "wa_pending_inbound",
    "wa_msg_secrets",
];

/// whatsapp-rust storage backend keeping one WhatsApp session's device and Signal
/// state in PostgreSQL. Cheap to clone: clones share the pool and the namespace.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    session_id: Uuid,
    fence: Fence,
    /// Set by [`PgStore::delete_all`]: the device is gone, and a write still on its way from
    /// the stopped client (its background saver) must not bring it back.
    forgotten: Arc<AtomicBool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store for the botwave WhatsApp session whose lease `fence` is. Nothing is read
    /// or written until the client uses it; the schema must already be migrated.
    pub fn new(pool: PgPool, fence: Fence) -> Self {
        Self {
            pool,
            session_id: fence.session_id(),
            fence,
            forgotten: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The botwave WhatsApp session this store is the namespace of.
    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// The lease this store writes under.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Forgets everything stored for this session (device, keys, Signal sessions, app
    /// state, caches), atomically. Used on logout; the next client built on this store
    /// starts unpaired.
    ///
    /// From then on the store (and every clone of it) refuses to touch the database.
    pub async fn delete_all(&self) -> Result<()> {
        self.forgotten.store(true, Ordering::SeqCst);
        self.fence.check().map_err(fence_err)?;
        let mut conn = self.pool.get().await.map_err(pool_err)?;
        let tx = conn.transaction().await.map_err(db_err)?;
        tx.execute_typed(
            "SELECT set_config('botwave.fence', $1, true)",
            &[(&self.fence.token(), Type::TEXT)],
        )
        .await
        .map_err(db_err)?;
        let statements: Vec<String> = TABLES
            .iter()
            .map(|table| format!("DELETE FROM {table} WHERE session_id = $1"))
            .collect();
        let params: [Param<'_>; 1] = [(&self.session_id, Type::UUID)];
        // Pipelined: the deletes go out together instead of one round trip each.
        futures_util::future::try_join_all(
            statements
                .iter()
                .map(|sql| tx.execute_typed(sql.as_str(), &params)),
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// A connection, once the lease is known to be still ours.
    async fn conn(&self) -> Result<Conn<'_>> {
        self.fence.check().map_err(fence_err)?;
        self.refuse_if_forgotten()?;
        let conn = self.pool.get().await.map_err(pool_err)?;
        // Checked again: waiting for a connection can outlast a logout.
        self.refuse_if_forgotten()?;
        Ok(conn)
    }

    fn refuse_if_forgotten(&self) -> Result<()> {
        if self.forgotten.load(Ordering::SeqCst) {
            return Err(StoreError::Validation(
                "this session's device was forgotten (logged out)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Runs `sql` (session id as `$1`, then `params`) under the fence and returns every
    /// row. Every statement of the store goes through here.
    async fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let conn = self.conn().await?;
        let params = self.with_session(params);
        let statement = self.fence.prepare(&conn, sql).await.map_err(fence_err)?;
        statement.query(&conn, &params).await.map_err(db_err)
    }

    /// Runs `sql` (session id as `$1`, then `params`) and returns its row, if any.
    async fn row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    /// Runs `sql` (session id as `$1`, then `params`) and returns the rows it touched.
    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let conn = self.conn().await?;
        let params = self.with_session(params);
        let statement = self.fence.prepare(&conn, sql).await.map_err(fence_err)?;
        statement.execute(&conn, &params).await.map_err(db_err)
    }

    /// `params` behind the session id, which is `$1` in every statement of this store.
    fn with_session<'a>(&'a self, params: &[Param<'a>]) -> Vec<Param<'a>> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push((&self.session_id as &(dyn ToSql + Sync), Type::UUID));
        all.extend(params.iter().cloned());
        all
    }
}
