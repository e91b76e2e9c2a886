//! End to end: a node, real PostgreSQL and the WhatsApp simulator driving the real whatsapp-rust
//! client — pairing, sending, receipts, unlinking, restarts.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

const OWN_PHONE: &str = "15550001111";
const FRIEND: &str = "15559990001";

#[tokio::test]
async fn pairing_through_the_api_ends_connected_with_the_phone_number() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    assert_eq!(app.status(&account.token).await["state"], "idle");

    app.initialize(&account.token).await;
    let qr = app.wait_for_qr(&account.token, None).await;
    let code = qr["code"].as_str().unwrap();
    assert!(
        code.split(',').count() >= 4,
        "a WhatsApp pairing string: {code}"
    );
    assert!(qr["expires_at"].is_string());
    assert!(qr["svg"].as_str().unwrap().contains("<svg"));
    let png = app
        .api(
            Method::GET,
            "/api/whatsapp/qr?format=png",
            &account.token,
            None,
        )
        .await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));
    assert_eq!(app.status(&account.token).await["state"], "qr");

    app.scan(OWN_PHONE, code).await;
    let status = app.wait_for_state(&account.token, "connected").await;
    assert_eq!(status["phone"], OWN_PHONE);
    assert_eq!(status["paired"], true);
    assert!(status["connected_since"].is_string());

    let qr_now = app
        .api(Method::GET, "/api/whatsapp/qr", &account.token, None)
        .await;
    assert_eq!(qr_now.status(), 409);
}

#[tokio::test]
async fn messages_sent_by_web_and_by_api_key_arrive_and_become_delivered_then_read() {
    let app = spawn_app().await;
    let friend_lid = app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;
    let key = app.create_api_key(&account).await;

    let web = app
        .send_web(&account.token, "+1 555 999 0001", "hello from the web ✓")
        .await;
    assert_eq!(web.status(), 202);
    let web: Value = web.json().await.unwrap();
    assert_eq!(web["status"], "queued");
    assert_eq!(web["source"], "web");

    let api_post = app
        .request(Method::POST, "/api/send")
        .header("X-Api-Key", &key)
        .json(&json!({ "to": FRIEND, "text": "hello from the API" }))
        .send()
        .await
        .unwrap();
    assert_eq!(api_post.status(), 202);
    let api_post: Value = api_post.json().await.unwrap();
    assert_eq!(api_post["source"], "api");

    let api_get = app
        .request(Method::GET, "/api/send")
        .query(&[
            ("api_key", key.as_str()),
            ("to", FRIEND),
            ("message", "hello & welcome from a URL"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(api_get.status(), 202);
    let api_get: Value = api_get.json().await.unwrap();

    for text in [
        "hello from the web ✓",
        "hello from the API",
        "hello & welcome from a URL",
    ] {
        app.wait_for_phone_text(FRIEND, text).await;
    }
    for sent in [&web, &api_post, &api_get] {
        let id = sent["id"].as_str().unwrap();
        let read = app
            .wait_for_message_status(&account.token, id, "read")
            .await;
        assert!(read["wa_message_id"].is_string(), "{read}");
        assert!(
            read["sent_at"].is_string()
                && read["delivered_at"].is_string()
                && read["read_at"].is_string(),
            "{read}"
        );
    }
    // Exactly one copy of each.
    assert_eq!(app.phone_messages(FRIEND).await.len(), 3);

    let log: Value = app
        .api(
            Method::GET,
            "/api/messages?status=read",
            &account.token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let logged = log["messages"].as_array().unwrap();
    assert_eq!(logged.len(), 3);
    // WhatsApp answered the client's usync with FRIEND's LID and the client encrypted to it;
    // the log still shows the number the user typed, and receipts found every message.
    for message in logged {
        assert_eq!(message["recipient"], FRIEND, "{message}");
        assert!(!message.to_string().contains(&friend_lid), "{message}");
    }
    let from_api: Value = app
        .api(
            Method::GET,
            "/api/messages?source=api",
            &account.token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(from_api["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unlinking_and_relinking_works_three_times_in_a_row() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    let mut previous_qr: Option<String> = None;
    for round in 0..3 {
        app.initialize(&account.token).await;
        let qr = app
            .wait_for_qr(&account.token, previous_qr.as_deref())
            .await;
        let code = qr["code"].as_str().unwrap().to_owned();
        app.scan(OWN_PHONE, &code).await;
        app.wait_for_state(&account.token, "connected").await;

        let text = format!("round {round}");
        let sent: Value = app
            .send_web(&account.token, FRIEND, &text)
            .await
            .json()
            .await
            .unwrap();
        app.wait_for_phone_text(FRIEND, &text).await;
        app.wait_for_message_status(&account.token, sent["id"].as_str().unwrap(), "delivered")
            .await;

        let unlinked = app
            .api(
                Method::POST,
                "/api/whatsapp/disconnect",
                &account.token,
                None,
            )
            .await;
        assert_eq!(unlinked.status(), 200);
        let status = app.status(&account.token).await;
        assert_eq!(status["paired"], false, "{status}");
        assert_ne!(status["state"], "connected");
        previous_qr = Some(code);
    }
    // Each unlink logged the device out on WhatsApp's side: nothing of ours is connected.
    let stats = app.sim_stats().await;
    assert_eq!(stats["connections"]["current"], 0, "{stats}");
}

#[tokio::test]
async fn a_dropped_connection_comes_back_without_a_new_qr() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let linked = app.link(&account, OWN_PHONE).await;
    let qr_before = app
        .api(Method::GET, "/api/whatsapp/qr", &account.token, None)
        .await
        .status();
    assert_eq!(qr_before, 409);

    let device = linked["jid"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{OWN_PHONE}:1@s.whatsapp.net"));
    app.control_ok(
        Method::POST,
        &format!("/devices/{device}/kick"),
        Some(json!({ "kind": "drop" })),
    )
    .await;

    let handshakes_before = app.sim_stats().await["handshakes"]["ok"]
        .as_u64()
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + crate::whatsapp_helpers::PATIENCE;
    loop {
        let handshakes = app.sim_stats().await["handshakes"]["ok"]
            .as_u64()
            .unwrap_or(0);
        let status = app.status(&account.token).await;
        if handshakes > handshakes_before && status["state"] == "connected" {
            assert_eq!(status["phone"], OWN_PHONE);
            break;
        }
        assert!(status["state"] != "qr", "asked for a new QR: {status}");
        assert!(
            std::time::Instant::now() < deadline,
            "never reconnected: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_a_node_restart_sessions_reconnect_without_qr_and_queued_messages_go_out_once() {
    let mut app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;

    app.stop_node().await;
    // Queued while no node runs: written straight to the outbox, as a node would.
    let user_id: uuid::Uuid = account.id.parse().unwrap();
    for text in ["queued while down 1", "queued while down 2"] {
        botwave_actors::outbox::enqueue(
            &app.db.pool,
            botwave_actors::outbox::NewMessage {
                user_id,
                recipient: FRIEND.into(),
                body: text.into(),
                source: botwave_actors::outbox::MessageSource::Api,
                api_key_id: None,
                idempotency_key: None,
            },
        )
        .await
        .unwrap();
    }
    app.restart_node().await;

    let status = app.wait_for_state(&account.token, "connected").await;
    assert_eq!(status["phone"], OWN_PHONE);
    app.wait_for_phone_text(FRIEND, "queued while down 1").await;
    app.wait_for_phone_text(FRIEND, "queued while down 2").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        app.phone_messages(FRIEND).await.len(),
        2,
        "sent exactly once"
    );
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_sends_once() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;
    let send = || {
        app.request(Method::POST, "/api/messages/send")
            .bearer_auth(&account.token)
            .header("Idempotency-Key", "order-1234")
            .json(&json!({ "to": FRIEND, "text": "your order shipped" }))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    app.wait_for_phone_text(FRIEND, "your order shipped").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(app.phone_messages(FRIEND).await.len(), 1);
}

#[tokio::test]
async fn users_never_see_each_others_sessions_or_messages() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    app.link(&alice, OWN_PHONE).await;
    let sent: Value = app
        .send_web(&alice.token, FRIEND, "for alice's eyes")
        .await
        .json()
        .await
        .unwrap();
    let id = sent["id"].as_str().unwrap();

    assert_eq!(app.status(&bob.token).await["state"], "idle");
    let peek = app
        .api(
            Method::GET,
            &format!("/api/messages/{id}"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(peek.status(), 404);
    let bobs_log: Value = app
        .api(Method::GET, "/api/messages", &bob.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(bobs_log["messages"].as_array().unwrap().is_empty());
    assert_eq!(
        app.api(Method::GET, "/api/whatsapp/qr", &bob.token, None)
            .await
            .status(),
        404
    );
    // Bob has no linked phone, so he cannot send through Alice's.
    let bob_send = app.send_web(&bob.token, FRIEND, "hijack").await;
    assert_eq!(bob_send.status(), 409);
    assert_eq!(error_code(bob_send).await, "not_paired");
}

#[tokio::test]
async fn bad_sends_are_refused_or_fail_clearly_without_harming_the_session() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;

    let unpaired = app.send_web(&account.token, FRIEND, "too early").await;
    assert_eq!(unpaired.status(), 409);
    assert_eq!(error_code(unpaired).await, "not_paired");

    app.link(&account, OWN_PHONE).await;
    for (to, text, field) in [
        ("not a number", "hi", "to"),
        ("0555 123", "hi", "to"),
        (FRIEND, "   ", "text"),
        (FRIEND, &"x".repeat(4097), "text"),
    ] {
        let response = app.send_web(&account.token, to, text).await;
        assert_eq!(response.status(), 400, "{to} / {} chars", text.len());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], field);
    }

    // A number nobody uses on WhatsApp: accepted, then failed with a reason.
    let stranger: Value = app
        .send_web(&account.token, "+1 555 000 9999", "anyone there?")
        .await
        .json()
        .await
        .unwrap();
    let failed = app
        .wait_for_message_status(&account.token, stranger["id"].as_str().unwrap(), "failed")
        .await;
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );

    // The session is unharmed: the next message goes through.
    let ok: Value = app
        .send_web(&account.token, FRIEND, "still here")
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_phone_text(FRIEND, "still here").await;
    app.wait_for_message_status(&account.token, ok["id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(app.status(&account.token).await["state"], "connected");
}
