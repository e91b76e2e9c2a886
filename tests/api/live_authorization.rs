//! An open websocket obeys the account's current rights: a password change or reset, a
//! disable, a deletion, a demotion or the token's expiry closes it within a second, with its
//! close code, and nothing is delivered after that.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::{
    cli::botwave,
    helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with},
    websocket::{Socket, authenticated, connect},
};

/// What the socket receives until the server closes it: the text events before the close,
/// the close code and reason, and how long it took.
async fn until_closed(socket: &mut Socket) -> (Vec<Value>, CloseCode, String, Duration) {
    let started = Instant::now();
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => events.push(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (
                    events,
                    frame.code,
                    frame.reason.to_string(),
                    started.elapsed(),
                );
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Asserts the socket is closed promptly with `code`, having received no event on the way,
/// and that nothing follows the close.
async fn assert_closed_with(socket: &mut Socket, code: u16, reason: &str) {
    let (events, got, why, took) = until_closed(socket).await;
    assert_eq!(got, CloseCode::from(code), "closed with {why}");
    assert_eq!(why, reason);
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    assert!(events.is_empty(), "delivered after revocation: {events:?}");
    let after = tokio::time::timeout(Duration::from_secs(1), socket.next()).await;
    assert!(
        !matches!(after, Ok(Some(Ok(Message::Text(_))))),
        "an event after the close: {after:?}"
    );
}

#[tokio::test]
async fn a_password_change_closes_the_old_tokens_socket_before_the_next_qr_code() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let mut old_socket = authenticated(&app, &user.token).await;

    let fresh = app
        .change_password(&user.token, PASSWORD, "Another-Horse-43")
        .await;
    let fresh_token = fresh["token"].as_str().unwrap().to_owned();
    let mut new_socket = authenticated(&app, &fresh_token).await;
    // Linking WhatsApp now produces a QR code: the new socket gets it, the old one must not.
    app.initialize(&fresh_token).await;

    assert_closed_with(&mut old_socket, 4003, "token_revoked").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = crate::websocket::next_json(&mut new_socket, Duration::from_secs(20))
            .await
            .expect("the new socket keeps receiving");
        if event["type"] == "qr_code" {
            break;
        }
        assert!(Instant::now() < deadline);
    }
}

#[tokio::test]
async fn disabling_deleting_and_demoting_close_the_accounts_sockets() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;

    let disabled = app.new_account().await;
    let mut socket = authenticated(&app, &disabled.token).await;
    app.admin_post(
        &format!("/api/admin/users/{}/disable", disabled.id),
        &admin.token,
        None,
    )
    .await;
    assert_closed_with(&mut socket, 4004, "account_disabled").await;

    let deleted = app.new_account().await;
    let mut socket = authenticated(&app, &deleted.token).await;
    let (status, body) = app
        .admin_call(
            Method::DELETE,
            &format!("/api/admin/users/{}", deleted.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_closed_with(&mut socket, 4004, "account_deleted").await;

    // A demoted admin stops receiving every user's session_state at once.
    let other_admin = app.new_admin().await;
    let mut socket = authenticated(&app, &other_admin.token).await;
    app.admin_post(
        &format!("/api/admin/users/{}/role", other_admin.id),
        &admin.token,
        Some(json!({ "role": "user" })),
    )
    .await;
    assert_closed_with(&mut socket, 4005, "role_changed").await;

    // Someone else's change leaves a socket alone.
    let bystander = app.new_account().await;
    let mut socket = authenticated(&app, &bystander.token).await;
    let target = app.new_account().await;
    app.admin_post(
        &format!("/api/admin/users/{}/disable", target.id),
        &admin.token,
        None,
    )
    .await;
    let quiet = tokio::time::timeout(Duration::from_secs(1), socket.next()).await;
    assert!(
        quiet.is_err(),
        "the bystander's socket was touched: {quiet:?}"
    );
}

#[tokio::test]
async fn a_reset_from_the_command_line_closes_the_socket_too() {
    let app = spawn_app().await;
    let user = app.new_account().await;
    let mut socket = authenticated(&app, &user.token).await;
    let reset = botwave(
        &app,
        &["admin", "reset-password", "--email", &user.email],
        Some("Reset-By-Cli-77"),
        "",
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_closed_with(&mut socket, 4003, "token_revoked").await;
}

const SECRET: &str = "live-authorization-test-secret-0123456789";

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let app = spawn_app_with(|settings| settings.auth.jwt_secret = Some(SECRET.into())).await;
    let user = app.new_account().await;
    // A token as any node with the shared secret would issue it, but living two seconds.
    let keys = botwave::auth::jwt::TokenKeys::new(SECRET, Duration::from_secs(2));
    let short = keys
        .issue(user.id.parse().unwrap(), botwave::domain::Role::User, 0)
        .unwrap();
    let mut socket = authenticated(&app, &short.token).await;
    let (events, code, reason, took) = until_closed(&mut socket).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::from(4002), "token_expired")
    );
    assert!(events.is_empty());
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Expiry has one-second granularity; the socket closes at its start, never after.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.me(&short.token).await.status(), 401);
}

#[tokio::test]
async fn websockets_are_capped_per_account_and_oversized_frames_get_1009() {
    let app = spawn_app_with(|settings| settings.http.max_websockets_per_user = 2).await;
    let user = app.new_account().await;
    let _first = authenticated(&app, &user.token).await;
    let _second = authenticated(&app, &user.token).await;
    let mut third = connect(&app).await;
    futures_util::SinkExt::send(
        &mut third,
        Message::text(json!({ "type": "authenticate", "token": user.token }).to_string()),
    )
    .await
    .unwrap();
    let (_, code, _, _) = until_closed(&mut third).await;
    assert_eq!(code, CloseCode::from(4029));

    let other = app.new_account().await;
    let mut socket = authenticated(&app, &other.token).await;
    futures_util::SinkExt::send(&mut socket, Message::text("x".repeat(64 * 1024)))
        .await
        .unwrap();
    let (_, code, _, _) = until_closed(&mut socket).await;
    assert_eq!(code, CloseCode::Size);
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed() {
    let app = spawn_app_with(|settings| {
        settings.http.ws_ping_interval_secs = 1;
        settings.http.ws_pong_timeout_secs = 1;
    })
    .await;
    let user = app.new_account().await;
    let mut socket = authenticated(&app, &user.token).await;
    // tungstenite answers pings only while the socket is read: stop reading for a while. The
    // node pings at 1 s, gives up at 2 s and then waits up to 2 s for the close answer: read
    // again inside that window.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, code, reason, _) = until_closed(&mut socket).await;
    assert_eq!(code, CloseCode::from(4009), "{reason}");
}

impl TestApp {
    /// An account's password changed through the API; the fresh token.
    pub async fn change_password(&self, token: &str, from: &str, to: &str) -> Value {
        let response = self
            .api(
                Method::POST,
                "/api/auth/password",
                token,
                Some(json!({ "current_password": from, "new_password": to })),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn websockets_over_the_per_address_cap_are_refused_before_the_upgrade() {
    let app = spawn_app_with(|settings| settings.http.max_websockets_per_ip = 1).await;
    let user = app.new_account().await;
    let _open = authenticated(&app, &user.token).await;
    let url = format!("{}/ws", app.address.replacen("http", "ws", 1));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
        other => panic!("a second socket from the address was let in: {other:?}"),
    }
}
