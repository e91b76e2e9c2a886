//! `/socket.io/` against the real socket.io-client 4 (Node.js, `tests/api/socket_io/client.mjs`),
//! over websocket and over HTTP long-polling: a user authenticates, links WhatsApp through the
//! simulator, sends a message and sees it all as events, never another user's; a bad
//! credential is answered `unauthorized` and disconnected, and so is an API key once revoked.
//!
//! Needs `node` and `npm` (see [`crate::socket_io_client`]).

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Account, TestApp, spawn_app},
    socket_io_client::SocketIoClient,
};

/// A user on `transport` links WhatsApp and sends, seeing each step as an event, while another
/// user's client beside it sees none of it.
async fn link_and_send_over(transport: &str, phone: &str, contact: &str) {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    let mut client = SocketIoClient::connect(&app.address, transport, &alice.token).await;
    let mut other = SocketIoClient::connect(&app.address, transport, &bob.token).await;
    let connected = client.next("connect").await;
    assert_eq!(connected["transport"], transport);
    let hello = client.next("authenticated").await;
    assert_eq!(hello["payload"]["user"]["id"], alice.id.as_str());
    other.next("authenticated").await;

    app.initialize(&alice.token).await;
    let qr = client.next("qr_code").await;
    let code = qr["payload"]["code"].as_str().expect("the QR string");
    assert!(
        qr["payload"]["svg"]
            .as_str()
            .is_some_and(|svg| svg.contains("<svg"))
    );
    app.scan(phone, code).await;
    let linked = client.next("whatsapp_connected").await;
    assert_eq!(linked["payload"]["phone"], phone);

    app.create_phone(contact).await;
    let sent: Value = app
        .send_web(&alice.token, contact, "over socket.io")
        .await
        .json()
        .await
        .unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    for status in ["sent", "delivered"] {
        client
            .next_where("message_status", |line| {
                line["payload"]["message_id"] == id.as_str() && line["payload"]["status"] == status
            })
            .await;
    }

    // Bob's client saw who he is and his own (empty) session, nothing of Alice's.
    let seen = other.drain().to_vec();
    let leaked: Vec<&Value> = seen
        .iter()
        .filter(|line| {
            let text = line.to_string();
            text.contains(&alice.id) || text.contains(&id) || text.contains(code)
        })
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(
        seen.iter().all(|line| line["event"] != "disconnect"),
        "{seen:?}"
    );
    client.close().await;
    other.close().await;
}

#[tokio::test]
async fn over_websocket_a_user_links_sends_and_sees_only_their_own_events() {
    link_and_send_over("websocket", "15550008001", "15550008002").await;
}

#[tokio::test]
async fn over_long_polling_a_user_links_sends_and_sees_only_their_own_events() {
    link_and_send_over("polling", "15550008011", "15550008012").await;
}

fn assert_never_authenticated(client: &SocketIoClient) {
    assert!(
        client
            .seen
            .iter()
            .all(|line| line["event"] != "authenticated"),
        "{:?}",
        client.seen
    );
}

#[tokio::test]
async fn a_bad_token_is_answered_unauthorized_and_disconnected() {
    let app = spawn_app().await;
    for transport in ["websocket", "polling"] {
        let mut client = SocketIoClient::connect(&app.address, transport, "not-a-token").await;
        let refused = client.next("unauthorized").await;
        assert_eq!(refused["payload"]["code"], 4001, "{refused}");
        let gone = client.next("disconnect").await;
        assert_eq!(gone["reason"], "io server disconnect", "{gone}");
        assert_never_authenticated(&client);
    }
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_disconnected() {
    let app = spawn_app().await;
    let mut client = SocketIoClient::connect(&app.address, "websocket", "").await;
    client.next("connect").await;
    let refused = client.next("unauthorized").await;
    assert_eq!(refused["payload"]["code"], 4000, "{refused}");
    client.next("disconnect").await;
}

async fn create_key(app: &TestApp, account: &Account, scopes: &[&str]) -> (String, String) {
    let created: Value = app
        .api(
            Method::POST,
            "/api/keys",
            &account.token,
            Some(json!({ "name": "socket.io", "scopes": scopes })),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_api_key_opens_the_feed_and_revoking_it_closes_the_socket() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let (key_id, key) = create_key(&app, &account, &["session:read"]).await;
    let mut client = SocketIoClient::connect(&app.address, "websocket", &key).await;
    let hello = client.next("authenticated").await;
    assert_eq!(hello["payload"]["user"]["id"], account.id.as_str());
    client.next("snapshot").await;

    let revoked = app
        .api(
            Method::DELETE,
            &format!("/api/keys/{key_id}"),
            &account.token,
            None,
        )
        .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let refused = client.next("unauthorized").await;
    assert_eq!(
        refused["payload"]["message"], "api_key_revoked",
        "{refused}"
    );
    client.next("disconnect").await;
}

#[tokio::test]
async fn an_oversized_message_closes_the_connection() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    // Past the 16 KiB a client may send (`/ws` closes with 1009 for the same).
    let oversized = format!("{}{}", account.token, " ".repeat(20 * 1024));
    for transport in ["websocket", "polling"] {
        let mut client = SocketIoClient::connect(&app.address, transport, &oversized).await;
        client.next("connect").await;
        let gone = client.next("disconnect").await;
        assert_ne!(gone["reason"], "io client disconnect", "{gone}");
        assert_never_authenticated(&client);
    }
}

#[tokio::test]
async fn an_api_key_needs_the_session_read_scope_and_losing_it_closes_the_socket() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let (_, sender_only) = create_key(&app, &account, &["messages:send"]).await;
    let mut refused = SocketIoClient::connect(&app.address, "websocket", &sender_only).await;
    let answer = refused.next("unauthorized").await;
    assert!(
        answer["payload"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("session:read")),
        "{answer}"
    );
    assert_never_authenticated(&refused);

    let (key_id, reader) = create_key(&app, &account, &["session:read", "messages:send"]).await;
    let mut client = SocketIoClient::connect(&app.address, "polling", &reader).await;
    client.next("authenticated").await;
    let narrowed = app
        .api(
            Method::PATCH,
            &format!("/api/keys/{key_id}"),
            &account.token,
            Some(json!({ "scopes": ["messages:send"] })),
        )
        .await;
    assert!(narrowed.status().is_success(), "{}", narrowed.status());
    let closed = client.next("unauthorized").await;
    assert_eq!(
        closed["payload"]["message"], "insufficient_scope",
        "{closed}"
    );
    client.next("disconnect").await;
}

#[tokio::test]
async fn a_client_too_slow_to_keep_up_is_dropped_and_others_keep_their_events() {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    let mut slow = SocketIoClient::connect(&app.address, "websocket", &alice.token).await;
    let mut other = SocketIoClient::connect(&app.address, "websocket", &bob.token).await;
    slow.next("snapshot").await;
    other.next("snapshot").await;
    slow.command("pause").await;

    // QR codes come with their SVG (kilobytes each): far more than the connection holds while
    // Alice's client reads nothing.
    let alice_id: uuid::Uuid = alice.id.parse().unwrap();
    let bob_id: uuid::Uuid = bob.id.parse().unwrap();
    let qr = |user_id, n: usize| botwave_actors::SessionEvent::QrCode {
        user_id,
        code: format!("2@{n:0>200}"),
        expires_at: chrono::Utc::now(),
    };
    for n in 0..3_000 {
        app.events.publish(qr(alice_id, n));
    }
    app.events.publish(qr(bob_id, 0));
    let bobs = other.next("qr_code").await;
    assert_eq!(bobs["payload"]["user_id"], bob.id.as_str());

    // Once it reads again, Alice's client gets what was queued for it, then is disconnected:
    // the server dropped it rather than hold 3,000 events for it.
    slow.command("resume").await;
    let gone = slow.next("disconnect").await;
    assert_eq!(gone["reason"], "io server disconnect", "{gone}");
    let delivered = slow
        .seen
        .iter()
        .filter(|line| line["event"] == "qr_code")
        .count();
    assert!(
        delivered < 3_000,
        "all {delivered} were held for the slow client"
    );
    assert!(
        other
            .drain()
            .iter()
            .all(|line| line["event"] != "disconnect"),
        "{:?}",
        other.seen
    );
}
