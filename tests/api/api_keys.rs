use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app};

async fn create_key(app: &TestApp, token: &str, name: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/keys")
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn list_keys(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .request(Method::GET, "/api/keys")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn create_list_use_and_revoke_a_key() {
    let app = spawn_app().await;
    let account = app.new_account().await;

    let created = create_key(&app, &account.token, "  zapier  ").await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["name"], "zapier");

    // The listing shows the key without its secret, and the database keeps only a digest.
    let keys = list_keys(&app, &account.token).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], created["id"]);
    assert!(keys[0]["last_used_at"].is_null());
    assert!(!keys[0].to_string().contains(&secret));
    let conn = app.db.pool.get().await.unwrap();
    let stored: i64 = conn
        .query_one(
            "SELECT count(*) FROM api_keys WHERE key_hash = sha256($1::text::bytea)",
            &[&secret],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);

    // Both header forms authenticate as the owner.
    let me: Value = app.me(&secret).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], account.email);
    assert_eq!(me["authenticated_with"]["type"], "api_key");
    let via_header = app
        .request(Method::GET, "/api/auth/me")
        .header("X-Api-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(via_header.status(), 200);
    assert!(!list_keys(&app, &account.token).await[0]["last_used_at"].is_null());

    let revoked = app
        .request(
            Method::DELETE,
            &format!("/api/keys/{}", created["id"].as_str().unwrap()),
        )
        .bearer_auth(&account.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let rejected = app.me(&secret).await;
    assert_eq!(rejected.status(), 401);
    assert_eq!(error_code(rejected).await, "invalid_api_key");
    assert!(list_keys(&app, &account.token).await.is_empty());
}

#[tokio::test]
async fn one_user_cannot_see_or_revoke_anothers_keys() {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let mallory = app.new_account().await;
    let created: Value = create_key(&app, &alice.token, "alice's")
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    assert!(list_keys(&app, &mallory.token).await.is_empty());
    let attempt = app
        .request(Method::DELETE, &format!("/api/keys/{id}"))
        .bearer_auth(&mallory.token)
        .send()
        .await
        .unwrap();
    assert_eq!(attempt.status(), 404);
    // Alice's key still works.
    assert_eq!(app.me(created["key"].as_str().unwrap()).await.status(), 200);
    assert_eq!(list_keys(&app, &alice.token).await.len(), 1);
}

#[tokio::test]
async fn keys_cannot_manage_keys_and_bad_requests_are_explained() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let created: Value = create_key(&app, &account.token, "k")
        .await
        .json()
        .await
        .unwrap();
    let secret = created["key"].as_str().unwrap();

    let by_key = create_key(&app, secret, "escalation").await;
    assert_eq!(by_key.status(), 403);
    assert_eq!(error_code(by_key).await, "forbidden");

    let empty = create_key(&app, &account.token, "   ").await;
    assert_eq!(empty.status(), 400);
    assert_eq!(error_code(empty).await, "validation_failed");
    let long = create_key(&app, &account.token, &"x".repeat(101)).await;
    assert_eq!(long.status(), 400);

    for id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let response = app
            .request(Method::DELETE, &format!("/api/keys/{id}"))
            .bearer_auth(&account.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
    }
    assert_eq!(list_keys(&app, &account.token).await.len(), 1);
}
