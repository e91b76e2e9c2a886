use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_ok_on_a_migrated_database() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["schema_version"].as_i64().unwrap(),
        i64::from(botwave::db::migrate::latest_version())
    );
}

#[tokio::test]
async fn readyz_reports_unready_when_migrations_are_missing() {
    let app = spawn_app().await;
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "DELETE FROM schema_migrations WHERE version = $1",
        &[&botwave::db::migrate::latest_version()],
    )
    .await
    .unwrap();
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}
