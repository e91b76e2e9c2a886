//! The `/ws` event stream: authentication rules and who receives which events.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::helpers::{TestApp, spawn_app};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(app: &TestApp) -> Socket {
    let url = format!("{}/ws", app.address.replacen("http", "ws", 1));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket upgrade")
        .0
}

/// A socket past `authenticated` and the session `snapshot` that follows it.
pub async fn authenticated(app: &TestApp, token: &str) -> Socket {
    let (socket, _) = reconnected(app, token, None).await;
    socket
}

/// Authenticates with `since` (the last cursor a client saw, when it reconnects); answers the
/// socket past `authenticated`, and the snapshot frame.
pub async fn reconnected(app: &TestApp, token: &str, since: Option<&str>) -> (Socket, Value) {
    let mut socket = connect(app).await;
    let mut authenticate = json!({ "type": "authenticate", "token": token });
    if let Some(since) = since {
        authenticate["since"] = json!(since);
    }
    socket
        .send(Message::text(authenticate.to_string()))
        .await
        .unwrap();
    let hello = next_json(&mut socket, Duration::from_secs(10))
        .await
        .expect("authenticated");
    assert_eq!(hello["type"], "authenticated", "{hello}");
    assert!(
        hello["cursor"].is_string(),
        "every frame has a cursor: {hello}"
    );
    let snapshot = next_json(&mut socket, Duration::from_secs(10))
        .await
        .expect("a snapshot of the session");
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    (socket, snapshot)
}

/// The next JSON event, or `None` if none arrives in time.
pub async fn next_json(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            return Some(serde_json::from_str(&text).unwrap());
        }
    }
}

/// Waits for the server to close the socket and returns its close code and reason.
pub async fn close_frame(socket: &mut Socket) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.to_string());
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_socket_that_never_authenticates_is_closed() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    let started = std::time::Instant::now();
    let (code, _) = close_frame(&mut socket).await;
    assert_eq!(code, CloseCode::from(4000));
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test]
async fn a_bad_token_is_closed_with_a_reason() {
    let app = spawn_app().await;
    for token in ["not-a-jwt", ""] {
        let mut socket = connect(&app).await;
        socket
            .send(Message::text(
                json!({ "type": "authenticate", "token": token }).to_string(),
            ))
            .await
            .unwrap();
        let (code, reason) = close_frame(&mut socket).await;
        assert_eq!(code, CloseCode::from(4001));
        assert!(reason.contains("token"), "{reason}");
    }
    let mut socket = connect(&app).await;
    socket.send(Message::text("hello?")).await.unwrap();
    let (code, _) = close_frame(&mut socket).await;
    assert_eq!(code, CloseCode::from(4001));
}

#[tokio::test]
async fn events_reach_only_their_owner_and_admins_see_every_session_state() {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    let admin = app.new_admin().await;
    let mut alice_socket = authenticated(&app, &alice.token).await;
    let mut bob_socket = authenticated(&app, &bob.token).await;
    let mut admin_socket = authenticated(&app, &admin.token).await;

    app.initialize(&alice.token).await;
    let mut saw_qr = false;
    while let Some(event) = next_json(&mut alice_socket, Duration::from_secs(30)).await {
        if event["type"] == "qr_code" {
            assert!(
                event["svg"].as_str().is_some_and(|s| s.contains("<svg")),
                "QR events carry the image"
            );
            assert!(
                event["code"].as_str().is_some_and(|c| c.contains(',')),
                "{event}"
            );
            saw_qr = true;
            break;
        }
    }
    assert!(saw_qr, "alice never got her QR code");

    let mut admin_saw_alice = false;
    while let Some(event) = next_json(&mut admin_socket, Duration::from_secs(5)).await {
        assert_ne!(
            event["type"], "qr_code",
            "admins get states, not other users' QR codes"
        );
        if event["type"] == "session_state" && event["user_id"] == alice.id.as_str() {
            admin_saw_alice = true;
        }
    }
    assert!(admin_saw_alice);
    assert_eq!(
        next_json(&mut bob_socket, Duration::from_secs(2)).await,
        None,
        "bob got alice's event"
    );
}

#[tokio::test]
async fn a_stopping_node_closes_its_sockets_with_a_reason_to_reconnect() {
    let mut app = spawn_app().await;
    let account = app.new_account().await;
    let mut socket = authenticated(&app, &account.token).await;
    let closed = tokio::spawn(async move { close_frame(&mut socket).await });
    app.stop_node().await;
    let (code, reason) = closed.await.unwrap();
    assert_eq!(code, CloseCode::Away);
    assert!(reason.contains("shutting down"), "{reason}");
}

#[tokio::test]
async fn a_burst_of_one_users_events_neither_delays_nor_closes_anothers_socket() {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    let mut alice_socket = authenticated(&app, &alice.token).await;
    let _bob_socket = authenticated(&app, &bob.token).await;
    let alice_id: uuid::Uuid = alice.id.parse().unwrap();
    let bob_id: uuid::Uuid = bob.id.parse().unwrap();
    let status = |user_id, n: u128| botwave_actors::SessionEvent::MessageStatus {
        user_id,
        message_id: uuid::Uuid::from_u128(n),
        status: botwave_actors::outbox::MessageStatus::Sent,
        at: chrono::Utc::now(),
        error: None,
        not_before: None,
    };

    // Bob's account produces 10,000 events at once (a bulk send); Alice's, one now and then.
    // Bob's socket does not read them, so his channel overflows; Alice's must not notice.
    for n in 0..10_000u128 {
        app.events.publish(status(bob_id, n));
        if n % 1_000 == 999 {
            app.events.publish(status(alice_id, n));
        }
    }
    for n in (0..10_000u128).filter(|n| n % 1_000 == 999) {
        let event = next_json(&mut alice_socket, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("alice's event {n} never came (socket closed or stuck)"));
        assert_eq!(event["type"], "message_status", "{event}");
        assert_eq!(event["user_id"], alice.id.as_str());
        assert_eq!(event["message_id"], uuid::Uuid::from_u128(n).to_string());
    }
}
