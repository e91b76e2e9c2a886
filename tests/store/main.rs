//! Storage backend tests: one conformance suite, generic over wacore's `Backend`, run
//! against `InMemoryBackend` (wacore's reference behaviour) and against `PgStore` on a
//! fresh database, plus the checks only a database backend needs.

#[path = "../common/mod.rs"]
mod common;

mod conformance;
mod postgres;

use std::time::Duration;

use botwave_actors::PgPool;
use botwave_actors::lease::{self, LeaseTiming};
use botwave_actors::store::PgStore;
use botwave_actors::wacore::store::InMemoryBackend;
use uuid::Uuid;

/// A `PgStore` on a fresh, migrated database. The database lives as long as the
/// returned handle.
async fn pg_store() -> (common::TestDatabase, PgStore) {
    let db = common::TestDatabase::create().await;
    let store = new_session_store(&db.pool).await;
    (db, store)
}

/// A store for a new session, under a lease claimed for it (every write is fenced).
async fn new_session_store(pool: &PgPool) -> PgStore {
    let session_id = Uuid::new_v4();
    let fence = lease::claim(
        pool,
        session_id,
        Uuid::new_v4(),
        LeaseTiming::new(Duration::from_secs(600)),
    )
    .await
    .expect("claim succeeds")
    .expect("a new session's lease is free");
    PgStore::new(pool.clone(), fence)
}

/// Generates one test per behaviour and backend: `in_memory::<name>` and
/// `postgres::<name>` run the same `conformance::<module>::<name>`.
macro_rules! conformance_tests {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod in_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    conformance::$module::$name(&InMemoryBackend::new()).await;
                }
            )*

            #[tokio::test]
            async fn namespaces_are_isolated() {
                conformance::isolation::namespaces_are_isolated(
                    &InMemoryBackend::new(),
                    &InMemoryBackend::new(),
                )
                .await;
            }
        }

        mod postgres_backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = pg_store().await;
                    conformance::$module::$name(&store).await;
                }
            )*

            /// Two sessions sharing one database.
            #[tokio::test]
            async fn namespaces_are_isolated() {
                let (db, first) = pg_store().await;
                let second = new_session_store(&db.pool).await;
                conformance::isolation::namespaces_are_isolated(&first, &second).await;
            }
        }
    };
}

conformance_tests!(
    signal::identities_round_trip_overwrite_and_delete,
    signal::identity_batch_last_write_wins,
    signal::sessions_round_trip_overwrite_and_delete,
    signal::session_batch_inserts_and_updates,
    signal::signal_state_for_user_matches_user_prefix_only,
    signal::prekeys_round_trip,
    signal::prekey_batches,
    signal::marking_uploaded_never_resurrects_prekeys,
    signal::signed_prekeys_round_trip,
    signal::sender_keys_round_trip_and_batch,
    app_state::sync_keys_round_trip_and_latest,
    app_state::versions_default_round_trip_and_overwrite,
    app_state::mutation_macs_round_trip_batch_and_delete,
    app_state::clearing_mutation_macs_touches_one_collection,
    protocol::sender_key_devices_track_status_per_group,
    protocol::sender_key_device_rows_deleted_across_groups,
    protocol::lid_mappings_resolve_both_ways,
    protocol::lid_mapping_batch_and_listing,
    protocol::base_keys_detect_collisions,
    protocol::device_lists_round_trip_and_batch,
    protocol::group_metadata_round_trip,
    protocol::tc_tokens_round_trip,
    protocol::tc_token_touch_creates_placeholder_and_only_advances,
    protocol::received_tc_token_is_newer_wins_and_keeps_sender_timestamp,
    protocol::expired_tc_tokens_pruned_only_when_both_windows_stale,
    protocol::sent_messages_taken_once_and_expired,
    protocol::pending_inbound_round_trip_and_batches,
    msg_secret::msg_secrets_round_trip_keyed_by_all_three_columns,
    msg_secret::msg_secret_upserts_merge_deadlines_and_times,
    msg_secret::expired_msg_secrets_pruned_by_deadline,
    device::device_created_once_then_saved_and_loaded,
);
