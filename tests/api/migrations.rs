use botwave::db::migrate;

use crate::common::TestDatabase;

#[tokio::test]
async fn migrations_apply_twice_without_error_and_without_rerunning() {
    let db = TestDatabase::create().await;
    // `create` already migrated; a second and third run find nothing to do.
    assert!(migrate::run(&db.pool).await.unwrap().is_empty());
    assert!(migrate::run(&db.pool).await.unwrap().is_empty());
    assert_eq!(
        migrate::applied_version(&db.pool).await.unwrap(),
        Some(migrate::latest_version())
    );
}

#[tokio::test]
async fn concurrent_runners_apply_each_migration_once() {
    let db = TestDatabase::create().await;
    let conn = db.pool.get().await.unwrap();
    // Start from an empty schema, then race three runners as three nodes starting at once would.
    conn.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await
        .unwrap();
    drop(conn);
    let (a, b, c) = tokio::join!(
        migrate::run(&db.pool),
        migrate::run(&db.pool),
        migrate::run(&db.pool)
    );
    let applied = a.unwrap().len() + b.unwrap().len() + c.unwrap().len();
    assert_eq!(applied, migrate::MIGRATIONS.len());
}

#[tokio::test]
async fn keys_made_before_scopes_existed_keep_every_scope_and_no_rate_of_their_own() {
    let db = TestDatabase::create().await;
    let mut conn = db.pool.get().await.unwrap();
    // The schema as it was before scopes: every migration up to 0013, recorded as applied.
    conn.batch_execute(
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public;
         CREATE TABLE schema_migrations (
             version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (index, migration) in migrate::MIGRATIONS.iter().enumerate() {
        let version = index as i32 + 1;
        if version >= 14 {
            break;
        }
        let tx = conn.transaction().await.unwrap();
        tx.batch_execute(migration.sql).await.unwrap();
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &migration.name],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    conn.batch_execute(
        "INSERT INTO users (id, email, password_hash)
             VALUES ('00000000-0000-0000-0000-0000000000a1', 'old@example.com', 'x');
         INSERT INTO api_keys (id, user_id, name, prefix, key_hash)
             VALUES ('00000000-0000-0000-0000-0000000000b1',
                     '00000000-0000-0000-0000-0000000000a1', 'old', 'bw_old', '\\x01')",
    )
    .await
    .unwrap();
    drop(conn);

    let applied = migrate::run(&db.pool).await.unwrap();
    assert!(
        applied
            .first()
            .is_some_and(|name| name.starts_with("0014_")),
        "{applied:?}"
    );
    let conn = db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT scopes, requests_per_second, burst FROM api_keys WHERE name = 'old'",
            &[],
        )
        .await
        .unwrap();
    let scopes: Vec<String> = row.get(0);
    assert_eq!(
        scopes,
        [
            "messages:send",
            "messages:read",
            "webhooks:manage",
            "session:read"
        ]
    );
    assert_eq!(row.get::<_, Option<f64>>(1), None);
    assert_eq!(row.get::<_, Option<i32>>(2), None);
    // New keys name their scopes: the column has no default any more.
    let unscoped = conn
        .batch_execute(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash)
                 VALUES ('00000000-0000-0000-0000-0000000000b2',
                         '00000000-0000-0000-0000-0000000000a1', 'new', 'bw_new', '\\x02')",
        )
        .await;
    assert!(unscoped.is_err());
}
