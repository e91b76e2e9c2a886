//! What only a database backend has to get right: state outliving the store value,
//! forgetting a session, sharing the pool, failing cleanly.

use std::time::Duration;

use botwave_actors::PgPool;
use botwave_actors::store::PgStore;
use botwave_actors::wacore::store::error::StoreError;
use botwave_actors::wacore::store::traits::{DeviceStore, SignalStore};
use uuid::Uuid;

use crate::conformance::device::{paired_device, persisted};
use crate::conformance::isolation::{
    assert_holds_everything, assert_holds_nothing, fill_one_of_everything,
};
use crate::pg_store;

#[tokio::test]
async fn state_outlives_the_store_value() {
    let (db, store) = pg_store().await;
    let device = fill_one_of_everything(&store).await;
    let store_fence = store.fence().clone();
    drop(store);

    let reopened = PgStore::new(db.pool.clone(), store_fence);
    assert_holds_everything(&reopened, &device).await;
}

#[tokio::test]
async fn delete_all_forgets_only_its_own_session() {
    let (db, leaving) = pg_store().await;
    let staying = crate::new_session_store(&db.pool).await;
    fill_one_of_everything(&leaving).await;
    let device = fill_one_of_everything(&staying).await;

    leaving.delete_all().await.unwrap();
    let reopened = PgStore::new(db.pool.clone(), leaving.fence().clone());
    assert_holds_nothing(&reopened).await;
    assert_holds_everything(&staying, &device).await;

    // A write still on its way from the logged-out client (its background saver) is
    // refused: the device must not come back after it was forgotten.
    let late = leaving.save(&device).await.unwrap_err();
    assert!(format!("{late:?}").contains("forgotten"), "{late:?}");
    assert!(reopened.load().await.unwrap().is_none());

    // No row of the session is left behind in any table, including ones the trait
    // cannot list. The lease is not the store's: it outlives a logout so that its epoch
    // keeps growing.
    let conn = db.pool.get().await.unwrap();
    let tables = conn
        .query(
            "SELECT table_name::text FROM information_schema.columns
             WHERE column_name = 'session_id' AND table_name LIKE 'wa\\_%'
               AND table_name <> 'wa_leases' AND table_schema = current_schema()",
            &[],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 18, "schema has the store's tables");
    for table in tables {
        let table: String = table.get(0);
        let left: i64 = conn
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE session_id = $1"),
                &[&leaving.session_id()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table} still holds rows of the deleted session");
    }

    // The session can start over, on a store of its own.
    reopened.create().await.unwrap();
    assert!(reopened.exists().await.unwrap());
}

#[tokio::test]
async fn concurrent_writers_share_the_pool() {
    let (_db, store) = pg_store().await;
    let writers = (0..64).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let address = format!("{i}@lid");
            store
                .put_session(&address, address.as_bytes())
                .await
                .unwrap();
            store.put_identity(&address, [i as u8; 32]).await.unwrap();
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    for i in 0..64 {
        let address = format!("{i}@lid");
        assert_eq!(
            store.get_session(&address).await.unwrap().as_deref(),
            Some(address.as_bytes())
        );
        assert_eq!(
            store.load_identity(&address).await.unwrap(),
            Some([i as u8; 32])
        );
    }
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let (db, store) = pg_store().await;
    store.save(&paired_device()).await.unwrap();
    let conn = db.pool.get().await.unwrap();
    // The corruption is written under the session's lease, as any write must be.
    store.fence().apply(&conn).await.unwrap();
    conn.execute(
        "UPDATE wa_device SET noise_key = '\\x0102'::bytea WHERE session_id = $1",
        &[&store.session_id()],
    )
    .await
    .unwrap();
    assert!(matches!(store.load().await, Err(StoreError::Validation(_))));

    conn.execute(
        "UPDATE wa_device SET registration_id = -1 WHERE session_id = $1",
        &[&store.session_id()],
    )
    .await
    .unwrap();
    assert!(store.load().await.is_err());

    // Saving a good device repairs the row.
    let device = paired_device();
    store.save(&device).await.unwrap();
    assert_eq!(
        persisted(&store.load().await.unwrap().unwrap()),
        persisted(&device)
    );
}

#[tokio::test]
async fn unreachable_database_is_a_connection_error() {
    // Nothing listens on port 1; connecting fails at once or times out.
    let manager = botwave_actors::db::PgManager::new(
        "host=127.0.0.1 port=1 user=postgres connect_timeout=1"
            .parse()
            .unwrap(),
    );
    let pool: PgPool = bb8::Pool::builder()
        .connection_timeout(Duration::from_millis(500))
        .build_unchecked(manager);
    let fence = botwave_actors::lease::Fence::assumed(Uuid::new_v4(), 1, Duration::from_secs(60));
    let store = PgStore::new(pool, fence);

    let error = store.get_session("1@lid").await.unwrap_err();
    assert!(matches!(error, StoreError::Connection(_)), "{error:?}");
    assert!(matches!(
        store.exists().await,
        Err(StoreError::Connection(_))
    ));
}

/// Where `PgStore` knowingly differs from `InMemoryBackend`: when two LIDs share a
/// phone number and the newer one moves to another number, the in-memory reverse
/// index drops the phone entirely although the older LID still maps to it. PostgreSQL
/// answers from the mappings themselves, as the SQLite backend does: the phone resolves
/// to the LID that still maps to it.
#[tokio::test]
async fn phone_keeps_resolving_to_a_remaining_lid() {
    use botwave_actors::wacore::store::traits::{LidPnMappingEntry, ProtocolStore};

    let (_db, store) = pg_store().await;
    let mapping = |lid: &str, phone: &str, updated_at: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: updated_at,
        updated_at,
        learning_source: "usync".into(),
    };
    store
        .put_lid_mapping(&mapping("100", "5511", 1000))
        .await
        .unwrap();
    store
        .put_lid_mapping(&mapping("200", "5511", 2000))
        .await
        .unwrap();
    store
        .put_lid_mapping(&mapping("200", "5522", 3000))
        .await
        .unwrap();

    let phone = store.get_pn_mapping("5511").await.unwrap().unwrap();
    assert_eq!(phone.lid, "100");
    assert_eq!(
        store.get_pn_mapping("5522").await.unwrap().unwrap().lid,
        "200"
    );

    // Equal timestamps: the mapping written last wins.
    store
        .put_lid_mapping(&mapping("300", "5533", 7000))
        .await
        .unwrap();
    store
        .put_lid_mapping(&mapping("400", "5533", 7000))
        .await
        .unwrap();
    assert_eq!(
        store.get_pn_mapping("5533").await.unwrap().unwrap().lid,
        "400"
    );
}

/// A node whose lease was taken over (it was frozen, or cut off) must not write: the new
/// owner's Signal state would be overwritten with an older ratchet.
#[tokio::test]
async fn a_store_whose_lease_moved_on_can_no_longer_write() {
    let (db, stale) = pg_store().await;
    let original = paired_device();
    stale.save(&original).await.unwrap();
    let conn = db.pool.get().await.unwrap();
    // The lease expires while its holder still believes in it (its clock was stopped).
    conn.execute(
        "UPDATE wa_leases SET expires_at = now() WHERE session_id = $1",
        &[&stale.session_id()],
    )
    .await
    .unwrap();
    let timing = botwave_actors::lease::LeaseTiming::new(Duration::from_secs(600));
    let taken = botwave_actors::lease::claim(&db.pool, stale.session_id(), Uuid::new_v4(), timing)
        .await
        .unwrap()
        .expect("an expired lease can be claimed");
    assert_eq!(taken.epoch(), stale.fence().epoch() + 1);
    assert!(
        stale.fence().is_valid(),
        "the stale holder has not noticed yet"
    );

    let mut changed = original.clone();
    changed.registration_id = 4242;
    let refused = stale.save(&changed).await.unwrap_err();
    assert!(format!("{refused:?}").contains("BW409"), "{refused:?}");
    let refused_delete = stale.delete_all().await.unwrap_err();
    assert!(
        format!("{refused_delete:?}").contains("BW409"),
        "{refused_delete:?}"
    );

    let owner = PgStore::new(db.pool.clone(), taken);
    let kept = owner
        .load()
        .await
        .unwrap()
        .expect("the device is still there");
    assert_eq!(kept.registration_id, original.registration_id);
    owner.save(&changed).await.unwrap();
    assert_eq!(owner.load().await.unwrap().unwrap().registration_id, 4242);
}

/// A node keeps its prepared statements while another node of the cluster migrates the
/// schema: a statement whose result columns changed is prepared again, not failed.
#[tokio::test]
async fn prepared_statements_survive_a_migration_that_changes_their_columns() {
    use tokio_postgres::types::Type;

    let (db, store) = pg_store().await;
    let conn = db.pool.get().await.unwrap();
    conn.batch_execute("CREATE TABLE reshaped (a int); INSERT INTO reshaped VALUES (1)")
        .await
        .unwrap();
    let plain = "SELECT * FROM reshaped WHERE a = $1";
    let fenced = "SELECT * FROM reshaped WHERE a >= $1";
    let one = 1i32;
    let params = [(
        &one as &(dyn tokio_postgres::types::ToSql + Sync),
        Type::INT4,
    )];
    assert_eq!(conn.query_cached(plain, &params).await.unwrap()[0].len(), 1);
    let rows = store.fence().execute(&conn, fenced, &params).await.unwrap();
    assert_eq!(rows[0].len(), 1);
    let counted = "SELECT * FROM reshaped WHERE a <= $1";
    assert_eq!(conn.execute_cached(counted, &params).await.unwrap(), 1);

    // Another connection (another node, in production) changes the table's shape.
    let migrator = db.pool.get().await.unwrap();
    migrator
        .batch_execute("ALTER TABLE reshaped ADD COLUMN b text DEFAULT 'new'")
        .await
        .unwrap();

    let rows = conn.query_cached(plain, &params).await.unwrap();
    assert_eq!(rows[0].get::<_, &str>(1), "new");
    let rows = store.fence().execute(&conn, fenced, &params).await.unwrap();
    assert_eq!(rows[0].get::<_, &str>(1), "new");
    assert_eq!(conn.execute_cached(counted, &params).await.unwrap(), 1);
}
