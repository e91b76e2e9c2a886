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
