//! Webhooks end to end: endpoints managed over the API, events produced by real sessions
//! against the simulator, delivered to a real HTTP receiver started by each test, which checks
//! every signature with its own HMAC code.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, error_code, spawn_app_with},
    webhook_receiver::{Answer, Received, Receiver, assert_signed, expected_mac, signature_parts},
    whatsapp_helpers::{PATIENCE, eventually},
};

/// A node that delivers to 127.0.0.1 (the test's receiver) and retries quickly.
pub async fn spawn_hooks_app(
    adjust: impl FnOnce(&mut botwave::config::WebhookSettings),
) -> TestApp {
    spawn_app_with(|settings| {
        let hooks = &mut settings.webhooks;
        hooks.allow_private_targets = true;
        hooks.retry_base_ms = 100;
        hooks.retry_max_secs = 2;
        hooks.poll_interval_ms = 100;
        hooks.connect_timeout_ms = 1_000;
        hooks.request_timeout_ms = 2_000;
        adjust(hooks);
    })
    .await
}

/// Creates an endpoint for `events`; answers its id and secret.
pub async fn create_endpoint(
    app: &TestApp,
    token: &str,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let response = app
        .api(
            Method::POST,
            "/api/webhooks",
            token,
            Some(json!({ "url": url, "events": events })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().unwrap().to_owned(), secret)
}

pub async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    app.api(Method::GET, path, token, None)
        .await
        .json()
        .await
        .unwrap()
}

pub fn of_type<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .collect()
}

fn session_states(received: &[Received]) -> Vec<String> {
    of_type(received, "session.state")
        .iter()
        .map(|r| {
            r.json()["data"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_sent_message_produces_signed_status_webhooks_in_order() {
    let app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (_, secret) = create_endpoint(
        &app,
        &account.token,
        &receiver.url,
        &["message.status", "session.state"],
    )
    .await;
    app.link(&account, "15550001001").await;
    app.create_phone("15550001002").await;
    let sent: Value = app
        .send_web(&account.token, "+15550001002", "hello hooks")
        .await
        .json()
        .await
        .unwrap();
    let id = sent["id"].as_str().unwrap().to_owned();
    let received = receiver
        .wait_for("sent, delivered and read", PATIENCE, |received| {
            of_type(received, "message.status")
                .iter()
                .any(|r| r.json()["data"]["status"] == "read")
        })
        .await;
    let statuses: Vec<String> = of_type(&received, "message.status")
        .iter()
        .map(|r| {
            let body = r.json();
            assert_eq!(body["data"]["message_id"], id.as_str());
            assert_eq!(r.event_header, "message.status");
            body["data"]["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, ["queued", "sent", "delivered", "read"]);
    for delivery in &received {
        assert_signed(delivery, &secret);
        let body = delivery.json();
        for field in ["id", "type", "created_at", "data"] {
            assert!(!body[field].is_null(), "{field} missing in {body}");
        }
    }
    assert!(session_states(&received).contains(&"connected".to_owned()));
    // Every event has its own id.
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.json()["id"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), received.len());
}

#[tokio::test]
async fn failures_are_retried_under_the_same_event_id_and_a_400_is_not() {
    let app = spawn_hooks_app(|_| {}).await;
    let retried = Receiver::start().await;
    retried.script(&[Answer::Status(500), Answer::Status(500)]);
    let refused = Receiver::start().await;
    refused.script(&[Answer::Status(400)]);
    let account = app.new_account().await;
    let (retried_id, secret) =
        create_endpoint(&app, &account.token, &retried.url, &["session.state"]).await;
    let (refused_id, _) =
        create_endpoint(&app, &account.token, &refused.url, &["session.state"]).await;
    // Initializing moves the session to connecting, then to qr: two events.
    app.initialize(&account.token).await;
    let got = retried
        .wait_for(
            "the first event three times and the second",
            PATIENCE,
            |r| r.len() >= 4,
        )
        .await;
    let ids: Vec<String> = got.iter().map(|r| r.json()["id"].to_string()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[2], ids[3], "the next event waits for the first one");
    assert_eq!(
        session_states(&got[..4]),
        ["connecting", "connecting", "connecting", "qr"]
    );
    for delivery in &got {
        assert_signed(delivery, &secret);
    }
    let refused_got = refused
        .wait_for("both events", PATIENCE, |r| r.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(refused.received().len(), 2, "a 400 is not retried");
    assert_ne!(refused_got[0].json()["id"], refused_got[1].json()["id"]);
    let dead: Value = get_json(
        &app,
        &format!("/api/webhooks/{refused_id}/deliveries?state=dead"),
        &account.token,
    )
    .await;
    let dead = dead["deliveries"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(dead[0]["last_status"], 400);
    let attempts: Value = get_json(
        &app,
        &format!("/api/webhooks/{retried_id}/attempts"),
        &account.token,
    )
    .await;
    let codes: Vec<i64> = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(&codes[..3], [500, 500, 200]);
    assert!(attempts["attempts"][0]["latency_ms"].as_i64().is_some());
}

#[tokio::test]
async fn a_receiver_that_never_answers_ends_in_the_dead_letters_and_replay_delivers_it() {
    let app = spawn_hooks_app(|hooks| {
        hooks.request_timeout_ms = 300;
        hooks.max_attempts = 2;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Answer::Hang);
    let account = app.new_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    app.initialize(&account.token).await;
    let path = format!("/api/webhooks/{endpoint}/deliveries?state=dead");
    let deadline = Instant::now() + PATIENCE;
    let dead = loop {
        let body: Value = get_json(&app, &path, &account.token).await;
        let dead = body["deliveries"].as_array().unwrap().clone();
        if dead.len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "never dead: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dead.iter().all(|d| d["attempts"] == 2));
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer")
    );
    let before = receiver.received().len();
    assert_eq!(before, 4, "two attempts of each event");
    receiver.otherwise(Answer::Status(204));
    let replayed: Value = app
        .api(
            Method::POST,
            &format!("/api/webhooks/{endpoint}/replay"),
            &account.token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["replayed"], 2);
    let got = receiver
        .wait_for("the replayed events", PATIENCE, |r| r.len() >= before + 2)
        .await;
    let replayed_ids: Vec<Value> = got[before..]
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    let dead_ids: Vec<Value> = dead.iter().rev().map(|d| d["event_id"].clone()).collect();
    assert_eq!(
        replayed_ids, dead_ids,
        "replays keep the event id, in order"
    );
    for delivery in &got[before..] {
        assert_signed(delivery, &secret);
    }
    let body: Value = get_json(&app, &path, &account.token).await;
    let deadline = Instant::now() + PATIENCE;
    let mut body = body;
    while !body["deliveries"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "still dead: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = get_json(&app, &path, &account.token).await;
    }
}

#[tokio::test]
async fn a_dead_endpoint_of_one_user_does_not_delay_another_users_webhooks() {
    let app = spawn_hooks_app(|hooks| {
        hooks.request_timeout_ms = 3_000;
        hooks.concurrency = 8;
        hooks.concurrency_per_endpoint = 2;
    })
    .await;
    let dead = Receiver::start().await;
    dead.otherwise(Answer::Hang);
    let alive = Receiver::start().await;
    let a = app.new_account().await;
    let b = app.new_account().await;
    create_endpoint(&app, &a.token, &dead.url, &["session.state"]).await;
    create_endpoint(&app, &b.token, &alive.url, &["session.state"]).await;
    // A burst of A's events, each about its own subject so none waits for another: written
    // through the same function the triggers use.
    let conn = app.db.pool.get().await.unwrap();
    let a_id: uuid::Uuid = a.id.parse().unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'session.state', 'burst:' || n, '{}'::jsonb)
           FROM generate_series(1, 50) AS n",
        &[&a_id],
    )
    .await
    .unwrap();
    drop(conn);
    dead.wait_for("A's attempts", PATIENCE, |r| r.len() >= 2)
        .await;
    let started = Instant::now();
    app.initialize(&b.token).await;
    let got = alive
        .wait_for("B's events", PATIENCE, |r| {
            session_states(r).contains(&"qr".to_owned())
        })
        .await;
    let lag = got[0].at.duration_since(started);
    assert!(lag < Duration::from_millis(1_500), "B waited {lag:?}");
    assert!(
        dead.received().len() <= 4,
        "A holds at most its share of the slots"
    );
}

#[tokio::test]
async fn events_pending_when_the_node_stops_are_delivered_after_it_restarts() {
    let mut app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Answer::Status(503));
    let account = app.new_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    app.initialize(&account.token).await;
    app.wait_for_qr(&account.token, None).await;
    receiver
        .wait_for("a failing attempt", PATIENCE, |r| !r.is_empty())
        .await;
    app.stop_node().await;
    let conn = app.db.pool.get().await.unwrap();
    let pending: Vec<uuid::Uuid> = conn
        .query(
            "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1::text::uuid
              AND state = 'pending' ORDER BY seq",
            &[&endpoint],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    drop(conn);
    assert!(
        pending.len() >= 2,
        "events pending at the stop: {pending:?}"
    );
    receiver.otherwise(Answer::Status(200));
    app.restart_node().await;
    let got = receiver
        .wait_for("every pending event", PATIENCE, |received| {
            pending.iter().all(|id| {
                received
                    .iter()
                    .any(|r| r.json()["id"] == id.to_string() && r.signature.contains("v1="))
            })
        })
        .await;
    for delivery in &got {
        assert_signed(delivery, &secret);
    }
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_paused_until_resumed() {
    let app = spawn_hooks_app(|hooks| hooks.pause_after_failures = 3).await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Answer::Status(500));
    let account = app.new_account().await;
    let (endpoint, _) =
        create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    app.initialize(&account.token).await;
    let path = format!("/api/webhooks/{endpoint}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body: Value = get_json(&app, &path, &account.token).await;
        if body["paused"] == true {
            assert!(body["paused_reason"].as_str().unwrap().contains("3 failed"));
            break;
        }
        assert!(Instant::now() < deadline, "never paused: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "nothing is attempted while paused"
    );
    receiver.otherwise(Answer::Status(200));
    let resumed = app
        .api(
            Method::PATCH,
            &path,
            &account.token,
            Some(json!({ "paused": false })),
        )
        .await;
    assert_eq!(resumed.status(), 200);
    receiver
        .wait_for("the held events", PATIENCE, |r| {
            session_states(r).contains(&"qr".to_owned())
        })
        .await;
}

#[tokio::test]
async fn endpoints_are_managed_over_the_api_and_checked() {
    let app = spawn_app_with(|_| {}).await;
    let owner = app.new_account().await;
    let other = app.new_account().await;
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            app.api(Method::POST, "/api/webhooks", &token, Some(body))
                .await
        }
    };
    for (body, field) in [
        (
            json!({ "url": "not a url", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "ftp://example.com/", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "http://127.0.0.1:9/", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "http://10.0.0.8/", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "http://[::1]/x", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "http://localhost/x", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "http://169.254.169.254/", "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": format!("https://example.com/{}", "a".repeat(3000)), "events": ["message.status"] }),
            "url",
        ),
        (
            json!({ "url": "https://example.com/", "events": ["message.sent"] }),
            "events",
        ),
        (
            json!({ "url": "https://example.com/", "events": [] }),
            "events",
        ),
        (
            json!({ "url": "https://example.com/", "events": ["message.status"], "description": "d".repeat(201) }),
            "description",
        ),
    ] {
        let response = post(owner.token.clone(), body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "validation_failed", "{body}");
        assert_eq!(error["error"]["field"], field, "{body}");
    }
    let unknown_field = post(
        owner.token.clone(),
        json!({ "url": "https://example.com/", "events": ["message.status"], "secret": "mine" }),
    )
    .await;
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(error_code(unknown_field).await, "invalid_body");
    let oversized = post(
        owner.token.clone(),
        json!({ "url": "https://example.com/", "events": ["message.status"], "description": "x".repeat(100_000) }),
    )
    .await;
    assert_eq!(oversized.status(), 413);
    assert_eq!(error_code(oversized).await, "payload_too_large");

    let created = post(
        owner.token.clone(),
        json!({ "url": "https://93.184.216.34/hooks", "events": ["message.status", "message.status"], "description": "crm" }),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["events"], json!(["message.status"]));
    let id = created["id"].as_str().unwrap().to_owned();
    let one = format!("/api/webhooks/{id}");

    // The secret is shown once.
    let listed: Value = get_json(&app, "/api/webhooks", &owner.token).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(listed["webhooks"][0].get("secret").is_none());
    let read: Value = get_json(&app, &one, &owner.token).await;
    assert!(read.get("secret").is_none());
    assert_eq!(read["description"], "crm");

    // Another user sees nothing and changes nothing.
    let theirs: Value = get_json(&app, "/api/webhooks", &other.token).await;
    assert_eq!(theirs["webhooks"], json!([]));
    for (method, path, body) in [
        (Method::GET, one.clone(), None),
        (Method::PATCH, one.clone(), Some(json!({ "paused": true }))),
        (Method::DELETE, one.clone(), None),
        (Method::POST, format!("{one}/rotate-secret"), None),
        (Method::POST, format!("{one}/test"), None),
        (Method::GET, format!("{one}/deliveries"), None),
        (Method::GET, format!("{one}/attempts"), None),
        (Method::POST, format!("{one}/replay"), None),
    ] {
        let response = app.api(method.clone(), &path, &other.token, body).await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(error_code(response).await, "not_found");
    }
    let still: Value = get_json(&app, &one, &owner.token).await;
    assert_eq!(still["paused"], false);

    // Changes are checked like creations.
    let bad_patch = app
        .api(
            Method::PATCH,
            &one,
            &owner.token,
            Some(json!({ "events": ["nope"] })),
        )
        .await;
    assert_eq!(bad_patch.status(), 400);
    let bad_state = app
        .api(
            Method::GET,
            &format!("{one}/deliveries?state=lost"),
            &owner.token,
            None,
        )
        .await;
    assert_eq!(bad_state.status(), 400);
    let patched: Value = app
        .api(
            Method::PATCH,
            &one,
            &owner.token,
            Some(json!({ "events": ["message.received", "session.state"], "paused": true })),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        patched["events"],
        json!(["message.received", "session.state"])
    );
    assert_eq!(patched["paused"], true);
    let rotated: Value = app
        .api(
            Method::POST,
            &format!("{one}/rotate-secret"),
            &owner.token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(rotated["secret"], created["secret"]);
    let deleted = app.api(Method::DELETE, &one, &owner.token, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.api(Method::GET, &one, &owner.token, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.api(Method::GET, "/api/webhooks/not-a-uuid", &owner.token, None)
            .await
            .status(),
        404
    );
    let anonymous = app
        .request(Method::GET, "/api/webhooks")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_test_ping_reports_what_the_receiver_answered() {
    let app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(418)]);
    let account = app.new_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, &account.token, &receiver.url, &["message.received"]).await;
    let path = format!("/api/webhooks/{endpoint}/test");
    let first: Value = app
        .api(Method::POST, &path, &account.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["delivered"], false);
    assert_eq!(first["status_code"], 418);
    let second: Value = app
        .api(Method::POST, &path, &account.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["delivered"], true);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].json()["type"], "webhook.test");
    assert_signed(&received[1], &secret);
}

#[tokio::test]
async fn a_text_from_a_phone_is_stored_pushed_live_and_sent_as_a_signed_webhook() {
    let app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let other = app.new_account().await;
    let (_, secret) =
        create_endpoint(&app, &account.token, &receiver.url, &["message.received"]).await;
    app.link(&account, "15550002001").await;
    app.create_phone("15550002002").await;
    let mut socket = crate::websocket::authenticated(&app, &account.token).await;
    let sent = app
        .control_ok(
            Method::POST,
            "/phones/15550002002/send",
            Some(json!({ "to": "15550002001", "text": "hello from a phone" })),
        )
        .await;
    let wa_id = sent["id"].as_str().unwrap().to_owned();

    let got = receiver
        .wait_for("message.received", PATIENCE, |r| !r.is_empty())
        .await;
    assert_eq!(got.len(), 1);
    assert_signed(&got[0], &secret);
    let event = got[0].json();
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["data"]["from"], "15550002002");
    assert_eq!(event["data"]["text"], "hello from a phone");
    assert_eq!(event["data"]["type"], "text");
    assert_eq!(event["data"]["wa_message_id"], wa_id.as_str());

    let deadline = Instant::now() + PATIENCE;
    let live = loop {
        let frame = crate::websocket::next_json(&mut socket, Duration::from_secs(5)).await;
        if let Some(frame) = frame.filter(|f| f["type"] == "message_received") {
            break frame;
        }
        assert!(
            Instant::now() < deadline,
            "no message_received on the socket"
        );
    };
    assert_eq!(live["message"]["text"], "hello from a phone");
    assert_eq!(live["message"]["from"], "15550002002");

    let listed = get_json(&app, "/api/messages?direction=in", &account.token).await;
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{listed}");
    assert_eq!(messages[0]["text"], "hello from a phone");
    assert_eq!(messages[0]["wa_message_id"], wa_id.as_str());
    assert_eq!(messages[0]["chat"], "15550002002@s.whatsapp.net");
    let from_contact = get_json(
        &app,
        "/api/messages?direction=in&contact=%2B15550002002",
        &account.token,
    )
    .await;
    assert_eq!(from_contact["messages"].as_array().unwrap().len(), 1);
    let outbound = get_json(&app, "/api/messages", &account.token).await;
    assert_eq!(
        outbound["messages"],
        json!([]),
        "received messages are not in the sent log"
    );
    let theirs = get_json(&app, "/api/messages?direction=in", &other.token).await;
    assert_eq!(theirs["messages"], json!([]));
    let bad = app
        .api(
            Method::GET,
            "/api/messages?direction=sideways",
            &account.token,
            None,
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn two_nodes_deliver_each_event_once() {
    let app = spawn_hooks_app(|_| {}).await;
    let peer = app.spawn_peer("second").await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    // Both nodes' workers claim from the same table at once.
    let conn = app.db.pool.get().await.unwrap();
    let user: uuid::Uuid = account.id.parse().unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'session.state', 'two-nodes:' || n, '{}'::jsonb)
           FROM generate_series(1, 300) AS n",
        &[&user],
    )
    .await
    .unwrap();
    drop(conn);
    let got = receiver
        .wait_for("all 300 events", PATIENCE, |r| r.len() >= 300)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 300, "no event twice (got {})", got.len());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    peer.stop().await;
}

#[tokio::test]
async fn a_text_addressed_by_lid_is_stored_under_the_senders_phone_number() {
    let app = spawn_hooks_app(|_| {}).await;
    let account = app.new_account().await;
    app.link(&account, "15550005001").await;
    app.create_phone("15550005002").await;
    app.control_ok(
        Method::POST,
        "/phones/15550005002/send",
        Some(json!({ "to": "15550005001", "text": "by lid", "addressing": "lid" })),
    )
    .await;
    let deadline = Instant::now() + PATIENCE;
    let message = loop {
        let listed = get_json(&app, "/api/messages?direction=in", &account.token).await;
        if let Some(first) = listed["messages"].as_array().and_then(|m| m.first()) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "never received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(message["text"], "by lid");
    assert_eq!(message["from"], "15550005002");
    assert_eq!(message["chat"], "15550005002@s.whatsapp.net");
}

/// Sends a test ping to endpoint `id` and answers what the receiver got for it.
async fn ping(app: &TestApp, token: &str, id: &str, receiver: &Receiver) -> Received {
    let before = receiver.received().len();
    let response = app
        .api(
            Method::POST,
            &format!("/api/webhooks/{id}/test"),
            token,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    receiver
        .wait_for("the ping", PATIENCE, |r| r.len() > before)
        .await
        .remove(before)
}

/// Rotates endpoint `id`'s secret; answers the API's answer.
async fn rotate(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app
        .api(
            Method::POST,
            &format!("/api/webhooks/{id}/rotate-secret"),
            token,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_for_the_grace_period() {
    let app = spawn_hooks_app(|hooks| hooks.secret_grace_secs = 3).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (id, old) = create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    let rotated = rotate(&app, &account.token, &id).await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(
        rotated["previous_secret_valid_until"].is_string(),
        "{rotated}"
    );
    let endpoint = get_json(&app, &format!("/api/webhooks/{id}"), &account.token).await;
    assert_eq!(
        endpoint["previous_secret_valid_until"],
        rotated["previous_secret_valid_until"]
    );

    // Both a ping and an event from the worker carry both signatures, the new one first.
    let pinged = ping(&app, &account.token, &id, &receiver).await;
    let (_, macs) = signature_parts(&pinged);
    assert_eq!(
        macs,
        [expected_mac(&pinged, &new), expected_mac(&pinged, &old)]
    );
    let user: uuid::Uuid = account.id.parse().unwrap();
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'session.state', 'rotation', '{}'::jsonb)",
        &[&user],
    )
    .await
    .unwrap();
    drop(conn);
    let got = receiver
        .wait_for("the event", PATIENCE, |r| {
            !of_type(r, "session.state").is_empty()
        })
        .await;
    let event = of_type(&got, "session.state")[0];
    assert_eq!(
        signature_parts(event).1,
        [expected_mac(event, &new), expected_mac(event, &old)]
    );

    // Once the grace period is over only the new secret signs.
    eventually("the grace period to end", || async {
        let endpoint = get_json(&app, &format!("/api/webhooks/{id}"), &account.token).await;
        endpoint["previous_secret_valid_until"]
            .is_null()
            .then_some(())
    })
    .await;
    let pinged = ping(&app, &account.token, &id, &receiver).await;
    assert_eq!(signature_parts(&pinged).1, [expected_mac(&pinged, &new)]);
}

#[tokio::test]
async fn a_rotated_secret_stays_valid_for_a_day_by_default() {
    let app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (id, _) = create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    let rotated = rotate(&app, &account.token, &id).await;
    let until: chrono::DateTime<chrono::Utc> = rotated["previous_secret_valid_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = until - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "{left}"
    );
}

#[tokio::test]
async fn a_paused_endpoints_backlog_is_bounded_oldest_dropped_and_counted() {
    let app = spawn_hooks_app(|hooks| hooks.max_backlog = 50).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (id, _) = create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    let paused = app
        .api(
            Method::PATCH,
            &format!("/api/webhooks/{id}"),
            &account.token,
            Some(json!({ "paused": true })),
        )
        .await;
    assert_eq!(paused.status(), 200);
    let user: uuid::Uuid = account.id.parse().unwrap();
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'session.state', 'backlog:' || n,
                                      jsonb_build_object('n', n))
           FROM generate_series(1, 80) AS n",
        &[&user],
    )
    .await
    .unwrap();
    drop(conn);
    let endpoint = eventually("the backlog to be trimmed to 50", || async {
        let endpoint = get_json(&app, &format!("/api/webhooks/{id}"), &account.token).await;
        (endpoint["dropped"] == 30).then_some(endpoint)
    })
    .await;
    assert_eq!(endpoint["pending"], 50, "{endpoint}");
    assert!(
        receiver.received().is_empty(),
        "a paused endpoint gets nothing"
    );

    app.api(
        Method::PATCH,
        &format!("/api/webhooks/{id}"),
        &account.token,
        Some(json!({ "paused": false })),
    )
    .await;
    let got = receiver
        .wait_for("the 50 kept events", PATIENCE, |r| r.len() >= 50)
        .await;
    let mut numbers: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (31..=80).collect::<Vec<_>>(),
        "the newest 50 are kept"
    );
    let endpoint = get_json(&app, &format!("/api/webhooks/{id}"), &account.token).await;
    assert_eq!(endpoint["dropped"], 30);
}

/// The largest `Actual Rows` of any plan node that reads `webhook_deliveries`.
fn most_delivery_rows_read(plan: &Value) -> i64 {
    let own = if plan["Relation Name"] == "webhook_deliveries" {
        plan["Actual Rows"].as_i64().unwrap_or(0)
            + plan["Rows Removed by Filter"].as_i64().unwrap_or(0)
            + plan["Rows Removed by Index Recheck"].as_i64().unwrap_or(0)
    } else {
        0
    };
    plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(most_delivery_rows_read)
        .fold(own, i64::max)
}

#[tokio::test]
async fn claiming_reads_none_of_a_paused_endpoints_backlog() {
    let app = spawn_hooks_app(|hooks| hooks.max_backlog = 1_000_000).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (paused_id, _) =
        create_endpoint(&app, &account.token, &receiver.url, &["message.status"]).await;
    create_endpoint(&app, &account.token, &receiver.url, &["session.state"]).await;
    app.api(
        Method::PATCH,
        &format!("/api/webhooks/{paused_id}"),
        &account.token,
        Some(json!({ "paused": true })),
    )
    .await;
    let user: uuid::Uuid = account.id.parse().unwrap();
    let mut conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'message.status', 'backlog:' || n, '{}'::jsonb)
           FROM generate_series(1, 20000) AS n",
        &[&user],
    )
    .await
    .unwrap();
    conn.execute(
        "SELECT botwave_webhook_event($1, 'session.state', 'live', '{}'::jsonb)",
        &[&user],
    )
    .await
    .unwrap();
    conn.batch_execute("ANALYZE webhook_deliveries")
        .await
        .unwrap();

    // The claim as the workers run it, inside a transaction that is rolled back.
    let tx = conn.transaction().await.unwrap();
    let explain = format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) {}",
        botwave::webhooks::store::CLAIM_SQL
    );
    let no_busy: Vec<uuid::Uuid> = Vec::new();
    let no_counts: Vec<i64> = Vec::new();
    let row = tx
        .query_one(
            explain.as_str(),
            &[
                &uuid::Uuid::new_v4(),
                &64_i64,
                &4_i64,
                &no_busy,
                &no_counts,
                &30.0_f64,
            ],
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let plan: Value = row.get(0);
    let read = most_delivery_rows_read(&plan[0]["Plan"]);
    assert!(
        read < 100,
        "the claim read {read} delivery rows with 20,000 held: {plan:#}"
    );
}
