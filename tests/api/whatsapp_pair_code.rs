//! Linking by phone number end to end: the node asks its whatsapp-rust client for a link code,
//! the simulated phone types it, and the session connects and sends; plus the refusals.

use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app};
use crate::websocket::{Socket, authenticated, next_json};
use crate::whatsapp_helpers::PATIENCE;

const OWN_PHONE: &str = "15550004444";
const FRIEND: &str = "15559994444";

impl TestApp {
    pub async fn request_pair_code(&self, token: &str, phone: &str) -> reqwest::Response {
        self.api(
            Method::POST,
            "/api/whatsapp/pair-code",
            token,
            Some(json!({ "phone": phone })),
        )
        .await
    }

    /// The simulated phone `phone`'s user types `code`.
    pub async fn type_pair_code(&self, phone: &str, code: &str) -> reqwest::Response {
        self.control(
            Method::POST,
            "/pair-code",
            Some(json!({ "phone": phone, "code": code })),
        )
        .await
    }
}

/// The next event of `kind` on the socket, skipping others.
async fn event_of(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = next_json(socket, left)
            .await
            .unwrap_or_else(|| panic!("no {kind} event"));
        if event["type"] == kind {
            return event;
        }
    }
}

/// A valid link code that is not `code`.
fn other_code(code: &str) -> String {
    let replacement = if code.starts_with('2') { "3" } else { "2" };
    format!("{replacement}{}", &code[1..])
}

#[tokio::test]
async fn a_link_code_from_the_api_typed_on_the_phone_connects_the_session_which_then_sends() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    let mut socket = authenticated(&app, &account.token).await;

    // Nothing initialized: the request starts the session itself.
    let answer = app
        .request_pair_code(&account.token, "+1 555 000 4444")
        .await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let answer: Value = answer.json().await.unwrap();
    let code = answer["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8, "{answer}");
    assert!(
        code.bytes()
            .all(|b| b"123456789ABCDEFGHJKLMNPQRSTVWXYZ".contains(&b)),
        "{code}"
    );
    assert_eq!(answer["phone"], OWN_PHONE);
    assert!(answer["expires_at"].is_string());
    let event = event_of(&mut socket, "pair_code").await;
    assert_eq!(event["code"], code.as_str());
    assert!(event["expires_at"].is_string());

    // A mistyped code links nothing; the phone's user tries again.
    let wrong = app.type_pair_code(OWN_PHONE, &other_code(&code)).await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(error_code(wrong).await, "wrong_code");
    assert_ne!(app.status(&account.token).await["state"], "connected");

    let typed = app.type_pair_code(OWN_PHONE, &code).await;
    assert_eq!(typed.status(), 200, "{:?}", typed.text().await);
    let connected = event_of(&mut socket, "whatsapp_connected").await;
    assert_eq!(connected["phone"], OWN_PHONE);
    let status = app.wait_for_state(&account.token, "connected").await;
    assert_eq!(status["phone"], OWN_PHONE);
    assert_eq!(status["paired"], true);

    let sent = app
        .send_web(&account.token, FRIEND, "linked with a code")
        .await;
    assert_eq!(sent.status(), 202);
    app.wait_for_phone_text(FRIEND, "linked with a code").await;

    let again = app.request_pair_code(&account.token, OWN_PHONE).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "already_connected");
}

#[tokio::test]
async fn bad_link_code_requests_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let account = app.new_account().await;

    let bad_number = app.request_pair_code(&account.token, "call me maybe").await;
    assert_eq!(bad_number.status(), 400);
    let body: Value = bad_number.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(body["error"]["field"], "phone");

    let too_short = app.request_pair_code(&account.token, "+1 555").await;
    assert_eq!(too_short.status(), 400);
    let body: Value = too_short.json().await.unwrap();
    assert_eq!(body["error"]["field"], "phone");

    let no_phone = app
        .api(
            Method::POST,
            "/api/whatsapp/pair-code",
            &account.token,
            Some(json!({})),
        )
        .await;
    assert_eq!(no_phone.status(), 400);
    assert_eq!(error_code(no_phone).await, "invalid_body");

    let anonymous = app
        .request(Method::POST, "/api/whatsapp/pair-code")
        .json(&json!({ "phone": OWN_PHONE }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Linking is account management: an API key may not start it, as with initialize.
    let key = app.create_api_key(&account).await;
    let with_key = app
        .request(Method::POST, "/api/whatsapp/pair-code")
        .header("X-Api-Key", &key)
        .json(&json!({ "phone": OWN_PHONE }))
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 403);

    // None of that started a session.
    assert_eq!(app.status(&account.token).await["state"], "idle");

    // A phone that types a code no companion asked for gets nothing linked either.
    let stray = app.type_pair_code(OWN_PHONE, "ABCD2345").await;
    assert_eq!(stray.status(), 404);
}
