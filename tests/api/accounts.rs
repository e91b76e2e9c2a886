use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, error_code, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_login_and_me() {
    let app = spawn_app().await;
    let registered = app.register("Ada@Example.com", PASSWORD).await;
    assert_eq!(registered.status(), 201);
    let body: Value = registered.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["role"], "user");
    assert!(
        body.to_string().find("argon2").is_none(),
        "hash leaked: {body}"
    );

    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.status(), 200);
    let session: Value = login.json().await.unwrap();
    assert_eq!(session["token_type"], "Bearer");
    assert!(session["expires_at"].is_string());
    let token = session["token"].as_str().unwrap();

    let me = app.me(token).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["user"]["id"], body["user"]["id"]);
    assert_eq!(me["authenticated_with"]["type"], "token");
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_hashes() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let conn = app.db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&account.email],
        )
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn duplicate_email_is_409_whatever_its_case() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bob@example.com", PASSWORD).await.status(),
        201
    );
    let again = app.register("BOB@example.com", "Another-Pass-99").await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "email_taken");
    // The first account is untouched: its password still works.
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn bad_email_and_weak_password_are_rejected_with_the_field_named() {
    let app = spawn_app().await;
    for email in ["not-an-email", "", "a@b", "two@@example.com"] {
        let response = app.register(email, PASSWORD).await;
        assert_eq!(response.status(), 400, "{email:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["field"], "email");
    }
    for password in ["short", "aaaaaaaaaaaaaa", "12345678901234"] {
        let response = app.register("weak@example.com", password).await;
        assert_eq!(response.status(), 400, "{password:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "password");
    }
    // Nothing was created by the failed attempts.
    let conn = app.db.pool.get().await.unwrap();
    let count: i64 = conn
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let wrong = app.login(&account.email, "Wrong-Password-1").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_code(wrong).await, "invalid_credentials");
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(error_code(unknown).await, "invalid_credentials");
}

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_tampered_and_foreign_tokens_are_401() {
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(SECRET.into())).await;
    let account = app.new_account().await;
    let now = chrono::Utc::now().timestamp();

    let expired = sign(
        &json!({ "sub": account.id, "role": "user", "ver": 0, "iat": now - 7200, "exp": now - 60 }),
    );
    let response = app.me(&expired).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "token_expired");

    // Promote ourselves by editing the payload: the signature no longer matches.
    let mut parts: Vec<String> = account.token.split('.').map(str::to_owned).collect();
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({ "sub": account.id, "role": "admin", "ver": 0, "iat": now, "exp": now + 3600 })
            .to_string(),
    );
    parts[1] = payload;
    let response = app.me(&parts.join(".")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_token");

    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": account.id, "role": "user", "ver": 0, "iat": now, "exp": now + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    assert_eq!(app.me(&foreign).await.status(), 401);
    assert_eq!(app.me("garbage").await.status(), 401);

    let missing = app
        .request(reqwest::Method::GET, "/api/auth/me")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(missing).await, "missing_credentials");

    // A well-signed token for an account that does not exist.
    let ghost = sign(
        &json!({ "sub": Uuid::new_v4(), "role": "user", "ver": 0, "iat": now, "exp": now + 3600 }),
    );
    assert_eq!(app.me(&ghost).await.status(), 401);
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_nor_use_its_token_or_keys() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let key = app.create_api_key(&account).await;
    assert_eq!(app.me(&key).await.status(), 200);

    botwave::users::set_disabled(&app.db.pool, account.id.parse().unwrap(), true)
        .await
        .unwrap();

    let login = app.login(&account.email, PASSWORD).await;
    assert_eq!(login.status(), 403);
    assert_eq!(error_code(login).await, "account_disabled");
    assert_eq!(app.me(&account.token).await.status(), 403);
    let with_key = app.me(&key).await;
    assert_eq!(with_key.status(), 403);
    assert_eq!(error_code(with_key).await, "account_disabled");

    // Enabled again: logging in works, but the token issued before disabling stays void.
    botwave::users::set_disabled(&app.db.pool, account.id.parse().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(app.login(&account.email, PASSWORD).await.status(), 200);
    assert_eq!(app.me(&account.token).await.status(), 401);
    assert_eq!(app.me(&key).await.status(), 200);
}

#[tokio::test]
async fn changing_the_password_revokes_old_tokens() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let change = |current: &'static str, new: &'static str, token: String| {
        let request = app
            .request(reqwest::Method::POST, "/api/auth/password")
            .bearer_auth(token)
            .json(&json!({ "current_password": current, "new_password": new }));
        async move { request.send().await.unwrap() }
    };

    let wrong = change(
        "Not-The-Password-1",
        "Brand-New-Pass-7",
        account.token.clone(),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let weak = change(PASSWORD, "short", account.token.clone()).await;
    assert_eq!(weak.status(), 400);

    let changed = change(PASSWORD, "Brand-New-Pass-7", account.token.clone()).await;
    assert_eq!(changed.status(), 200);
    let fresh: Value = changed.json().await.unwrap();
    let fresh = fresh["token"].as_str().unwrap();

    assert_eq!(app.me(&account.token).await.status(), 401);
    assert_eq!(app.me(fresh).await.status(), 200);
    assert_eq!(app.login(&account.email, PASSWORD).await.status(), 401);
    assert_eq!(
        app.login(&account.email, "Brand-New-Pass-7").await.status(),
        200
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_email_and_per_address() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_email = 3;
        s.auth.login_attempts_per_ip = 6;
    })
    .await;
    let account = app.new_account().await;
    for _ in 0..3 {
        assert_eq!(
            app.login(&account.email, "Wrong-Password-1").await.status(),
            401
        );
    }
    // Even the right password is refused once the email's budget is spent.
    let limited = app.login(&account.email, PASSWORD).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(error_code(limited).await, "rate_limited");

    // Other emails from the same address still count against the address budget:
    // registration (1) + 4 logins so far; two more are allowed, then 429.
    assert_eq!(app.login("other@example.com", PASSWORD).await.status(), 401);
    let limited = app.login("third@example.com", PASSWORD).await;
    assert_eq!(limited.status(), 429);
}

/// A login attempt for a fresh email, as forwarded by a proxy for client `ip`.
async fn login_forwarded_for(app: &crate::helpers::TestApp, ip: &str) -> reqwest::StatusCode {
    app.request(reqwest::Method::POST, "/api/auth/login")
        .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
        .json(&json!({ "email": format!("{}@example.com", Uuid::new_v4().simple()), "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_login_budget() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_ip = 2;
        s.http.trust_forwarded_for = true;
    })
    .await;
    assert_eq!(login_forwarded_for(&app, "198.51.100.1").await, 401);
    assert_eq!(login_forwarded_for(&app, "198.51.100.1").await, 401);
    assert_eq!(login_forwarded_for(&app, "198.51.100.1").await, 429);
    // Another client behind the same proxy is not locked out by the first.
    assert_eq!(login_forwarded_for(&app, "198.51.100.2").await, 401);
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_limit() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_ip = 2).await;
    assert_eq!(login_forwarded_for(&app, "198.51.100.1").await, 401);
    assert_eq!(login_forwarded_for(&app, "198.51.100.2").await, 401);
    assert_eq!(login_forwarded_for(&app, "198.51.100.3").await, 429);
}
