use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with};

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

/// A key for `account` with `body` (a name is added), and its secret.
async fn key_with(app: &TestApp, token: &str, body: Value) -> (Value, String) {
    let mut body = body;
    body["name"] = json!("scoped");
    let response = app
        .request(Method::POST, "/api/keys")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    (created, secret)
}

async fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::Response {
    let request = app.request(method.clone(), path).header("X-Api-Key", key);
    let request = if method == Method::POST {
        request.json(&json!({ "to": "+15559990001", "text": "hi", "url": "https://example.com/hook", "events": ["message.sent"] }))
    } else {
        request
    };
    request.send().await.unwrap()
}

/// A 403 `insufficient_scope` naming `scope`.
async fn assert_lacks(response: reqwest::Response, scope: &str) {
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_scope", "{body}");
    assert_eq!(body["error"]["scope"], scope, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(scope),
        "{body}"
    );
}

#[tokio::test]
async fn a_key_does_only_what_its_scopes_allow() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let (reader, read_key) =
        key_with(&app, &account.token, json!({ "scopes": ["messages:read"] })).await;
    assert_eq!(reader["scopes"], json!(["messages:read"]));
    let (_, send_key) =
        key_with(&app, &account.token, json!({ "scopes": ["messages:send"] })).await;

    // Reading: it lists messages and its own account, but cannot send (either form), read the
    // session or touch webhooks.
    assert_eq!(
        with_key(&app, Method::GET, "/api/messages", &read_key)
            .await
            .status(),
        200
    );
    assert_eq!(app.me(&read_key).await.status(), 200);
    assert_lacks(
        with_key(&app, Method::POST, "/api/send", &read_key).await,
        "messages:send",
    )
    .await;
    let from_url = app
        .request(
            Method::GET,
            &format!("/api/send?api_key={read_key}&to=%2B15559990001&text=hi"),
        )
        .send()
        .await
        .unwrap();
    assert_lacks(from_url, "messages:send").await;
    assert_lacks(
        with_key(&app, Method::GET, "/api/whatsapp/status", &read_key).await,
        "session:read",
    )
    .await;
    assert_lacks(
        with_key(&app, Method::GET, "/api/webhooks", &read_key).await,
        "webhooks:manage",
    )
    .await;

    // Sending: it gets past the scope check (nothing is linked, so the send itself is refused
    // with not_paired), but cannot manage webhooks or read the log.
    let sent = with_key(&app, Method::POST, "/api/send", &send_key).await;
    assert_eq!(error_code(sent).await, "not_paired");
    assert_lacks(
        with_key(&app, Method::POST, "/api/webhooks", &send_key).await,
        "webhooks:manage",
    )
    .await;
    assert_lacks(
        with_key(&app, Method::GET, "/api/webhooks", &send_key).await,
        "webhooks:manage",
    )
    .await;
    assert_lacks(
        with_key(&app, Method::GET, "/api/messages", &send_key).await,
        "messages:read",
    )
    .await;
    let nothing_made: i64 = app
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM webhook_endpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nothing_made, 0);

    // The login token is not scoped.
    let by_token = app
        .request(Method::GET, "/api/webhooks")
        .bearer_auth(&account.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);

    // The list shows every key's scopes; a key made without naming any has all of them, and
    // /api/auth/me tells a key what it may do.
    let (_, full_key) = key_with(&app, &account.token, json!({})).await;
    let all = json!([
        "messages:send",
        "messages:read",
        "webhooks:manage",
        "session:read"
    ]);
    let keys = list_keys(&app, &account.token).await;
    let scopes: Vec<&Value> = keys.iter().map(|key| &key["scopes"]).collect();
    assert_eq!(
        scopes,
        vec![&all, &json!(["messages:send"]), &json!(["messages:read"])]
    );
    let me: Value = app.me(&full_key).await.json().await.unwrap();
    assert_eq!(me["authenticated_with"]["scopes"], all);
    assert_eq!(
        with_key(&app, Method::GET, "/api/whatsapp/status", &full_key)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_keys_scopes_can_be_changed_later() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let (created, key) =
        key_with(&app, &account.token, json!({ "scopes": ["messages:read"] })).await;
    let path = format!("/api/keys/{}", created["id"].as_str().unwrap());
    assert_lacks(
        with_key(&app, Method::GET, "/api/webhooks", &key).await,
        "webhooks:manage",
    )
    .await;

    let changed = app
        .request(Method::PATCH, &path)
        .bearer_auth(&account.token)
        .json(&json!({ "scopes": ["webhooks:manage", "messages:read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(
        changed["scopes"],
        json!(["messages:read", "webhooks:manage"])
    );
    assert_eq!(
        with_key(&app, Method::GET, "/api/webhooks", &key)
            .await
            .status(),
        200
    );

    // A key cannot widen its own scopes, and nobody can change another's key.
    let by_key = app
        .request(Method::PATCH, &path)
        .header("X-Api-Key", &key)
        .json(&json!({ "scopes": ["messages:send"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(by_key).await, "forbidden");
    let other = app.new_account().await;
    let foreign = app
        .request(Method::PATCH, &path)
        .bearer_auth(&other.token)
        .json(&json!({ "scopes": ["messages:send"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    assert_eq!(
        list_keys(&app, &account.token).await[0]["scopes"],
        json!(["messages:read", "webhooks:manage"])
    );
}

#[tokio::test]
async fn unknown_scopes_and_impossible_rates_are_refused_with_the_field() {
    let app = spawn_app_with(|settings| {
        settings.limits.requests_per_second = 10.0;
        settings.limits.burst = 50;
    })
    .await;
    let account = app.new_account().await;
    let cases = [
        (
            json!({ "scopes": ["messages:write"] }),
            "scopes",
            "messages:write",
        ),
        (json!({ "scopes": [] }), "scopes", "at least one"),
        (
            json!({ "scopes": ["messages:read", "admin"] }),
            "scopes",
            "admin",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 0 } }),
            "rate_limit.requests_per_second",
            "above 0",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": -2.5 } }),
            "rate_limit.requests_per_second",
            "above 0",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 11 } }),
            "rate_limit.requests_per_second",
            "at most the account's 10",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 1, "burst": 0 } }),
            "rate_limit.burst",
            "1 to the account's 50",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 1, "burst": -3 } }),
            "rate_limit.burst",
            "whole number",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 1, "burst": 2.5 } }),
            "rate_limit.burst",
            "whole number",
        ),
        (
            json!({ "rate_limit": { "requests_per_second": 1, "burst": 51 } }),
            "rate_limit.burst",
            "50",
        ),
    ];
    for (body, field, says) in cases {
        let mut body = body;
        body["name"] = json!("bad");
        let response = app
            .request(Method::POST, "/api/keys")
            .bearer_auth(&account.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            error["error"]["code"], "validation_failed",
            "{body}: {error}"
        );
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(list_keys(&app, &account.token).await.is_empty());

    // The same checks when a key is changed; nothing changes.
    let (created, _) = key_with(&app, &account.token, json!({})).await;
    let path = format!("/api/keys/{}", created["id"].as_str().unwrap());
    for body in [
        json!({ "scopes": ["nope"] }),
        json!({ "rate_limit": { "requests_per_second": -1 } }),
    ] {
        let response = app
            .request(Method::PATCH, &path)
            .bearer_auth(&account.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(error_code(response).await, "validation_failed");
    }
    let keys = list_keys(&app, &account.token).await;
    assert_eq!(keys[0]["scopes"].as_array().unwrap().len(), 4);
    assert!(keys[0]["rate_limit"].is_null());
}
