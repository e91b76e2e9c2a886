//! Messages contacts send to a linked number, against the simulator: none is lost when its
//! database write fails (WhatsApp hears nothing until it is stored, and redelivers what it
//! never heard about), one delivered twice is stored and announced once, and what is not
//! text is stored with its type and a placeholder.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Account, TestApp},
    webhook_receiver::{Receiver, assert_signed},
    webhooks::{create_endpoint, get_json, of_type, spawn_hooks_app},
    whatsapp_helpers::{PATIENCE, eventually},
};

/// Makes every insert into `inbound_messages` fail (as a full disk or a broken table
/// would), counting the attempts in the sequence `inbound_write_attempts`.
const BREAK_INBOUND_WRITES: &str = "
    CREATE SEQUENCE inbound_write_attempts;
    CREATE FUNCTION fail_inbound_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM nextval('inbound_write_attempts');
        RAISE EXCEPTION 'inbound_messages is unavailable (a test)';
    END $$;
    CREATE TRIGGER fail_inbound_write BEFORE INSERT ON inbound_messages
        FOR EACH ROW EXECUTE FUNCTION fail_inbound_write();";

const REPAIR_INBOUND_WRITES: &str = "DROP TRIGGER fail_inbound_write ON inbound_messages";

async fn sql(app: &TestApp, statements: &str) {
    let conn = app.db.pool.get().await.unwrap();
    conn.batch_execute(statements).await.unwrap();
}

/// Failed writes into `inbound_messages` so far.
async fn failed_writes(app: &TestApp) -> i64 {
    let conn = app.db.pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM inbound_write_attempts",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// `message.received` events written for `user` (each is one delivery per endpoint).
async fn received_events(app: &TestApp, account: &Account) -> i64 {
    let conn = app.db.pool.get().await.unwrap();
    let user: uuid::Uuid = account.id.parse().unwrap();
    conn.query_one(
        "SELECT count(*) FROM webhook_deliveries
          WHERE user_id = $1 AND event_type = 'message.received'",
        &[&user],
    )
    .await
    .unwrap()
    .get(0)
}

async fn inbound(app: &TestApp, account: &Account) -> Vec<Value> {
    get_json(app, "/api/messages?direction=in", &account.token).await["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The receipts the companion sent the phone for its message `id`.
async fn receipts_for(app: &TestApp, phone: &str, id: &str) -> usize {
    let receipts = app
        .control_ok(Method::GET, &format!("/phones/{phone}/receipts"), None)
        .await;
    receipts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == id)
        .count()
}

/// A node with `number` linked for a new account, which has an endpoint for
/// `message.received`, and the simulated phone `contact`.
async fn linked(number: &str, contact: &str) -> (TestApp, Receiver, Account, String) {
    let app = spawn_hooks_app(|_| {}).await;
    let receiver = Receiver::start().await;
    let account = app.new_account().await;
    let (_, secret) =
        create_endpoint(&app, &account.token, &receiver.url, &["message.received"]).await;
    app.link(&account, number).await;
    app.create_phone(contact).await;
    (app, receiver, account, secret)
}

async fn phone_sends(app: &TestApp, from: &str, body: Value) -> String {
    let sent = app
        .control_ok(Method::POST, &format!("/phones/{from}/send"), Some(body))
        .await;
    sent["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_received_message_whose_write_fails_is_stored_once_the_database_recovers() {
    let (app, receiver, account, secret) = linked("15550007001", "15550007002").await;
    sql(&app, BREAK_INBOUND_WRITES).await;

    let id = phone_sends(
        &app,
        "15550007002",
        json!({ "to": "15550007001", "text": "do not lose me" }),
    )
    .await;
    eventually("the write to fail and be tried again", || async {
        (failed_writes(&app).await >= 3).then_some(())
    })
    .await;
    assert_eq!(inbound(&app, &account).await, Vec::<Value>::new());
    assert_eq!(
        receipts_for(&app, "15550007002", &id).await,
        0,
        "WhatsApp was told the device has a message it did not store"
    );
    assert_eq!(app.sim.unacked("15550007001", 1), 1);

    sql(&app, REPAIR_INBOUND_WRITES).await;
    let got = receiver
        .wait_for("message.received", PATIENCE, |r| {
            !of_type(r, "message.received").is_empty()
        })
        .await;
    assert_signed(&got[0], &secret);
    assert_eq!(got[0].json()["data"]["text"], "do not lose me");
    eventually("the delivery receipt, once stored", || async {
        (receipts_for(&app, "15550007002", &id).await >= 1).then_some(())
    })
    .await;
    let stored = inbound(&app, &account).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["wa_message_id"], id.as_str());
    assert_eq!(received_events(&app, &account).await, 1);
    eventually("WhatsApp to drop it from the device's queue", || async {
        (app.sim.unacked("15550007001", 1) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_message_redelivered_after_a_reconnect_is_stored_and_announced_once() {
    let (app, receiver, account, _) = linked("15550007011", "15550007012").await;
    sql(&app, BREAK_INBOUND_WRITES).await;
    let id = phone_sends(
        &app,
        "15550007012",
        json!({ "to": "15550007011", "text": "across a reconnect" }),
    )
    .await;
    eventually("the write to fail", || async {
        (failed_writes(&app).await >= 1).then_some(())
    })
    .await;

    // The connection drops before the message was stored: WhatsApp, which got no receipt,
    // sends it again at the next login, while the first copy's write is still being retried.
    let sent_before = app.sim.stats().messages_sent_to_clients;
    app.sim
        .kick("15550007011", 1, botwave_wa_sim::KickKind::Drop);
    eventually("WhatsApp to send it again at the next login", || async {
        (app.sim.stats().messages_sent_to_clients > sent_before).then_some(())
    })
    .await;
    let failures = failed_writes(&app).await;
    eventually("the redelivered copy to be tried too", || async {
        (failed_writes(&app).await > failures + 1).then_some(())
    })
    .await;

    sql(&app, REPAIR_INBOUND_WRITES).await;
    receiver
        .wait_for("message.received", PATIENCE, |r| {
            !of_type(r, "message.received").is_empty()
        })
        .await;
    eventually("WhatsApp to hear that the device has it", || async {
        (app.sim.unacked("15550007011", 1) == 0).then_some(())
    })
    .await;
    let stored = inbound(&app, &account).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["wa_message_id"], id.as_str());
    assert_eq!(stored[0]["text"], "across a reconnect");
    assert_eq!(received_events(&app, &account).await, 1);
    assert_eq!(
        of_type(&receiver.received(), "message.received").len(),
        1,
        "one webhook"
    );
}

#[tokio::test]
async fn a_message_the_phone_sends_again_under_its_id_is_stored_and_announced_once() {
    let (app, receiver, account, _) = linked("15550007021", "15550007022").await;
    let mut socket = crate::websocket::authenticated(&app, &account.token).await;
    let id = phone_sends(
        &app,
        "15550007022",
        json!({ "to": "15550007021", "text": "said twice" }),
    )
    .await;
    eventually("the first copy's receipt", || async {
        (receipts_for(&app, "15550007022", &id).await >= 1).then_some(())
    })
    .await;
    let first = receipts_for(&app, "15550007022", &id).await;

    // The same message id again, encrypted anew, as a phone resends it.
    let again = app
        .control_ok(
            Method::POST,
            "/phones/15550007022/resend",
            Some(json!({ "id": id })),
        )
        .await;
    assert_eq!(again["id"], id.as_str());
    eventually("the second copy's receipt", || async {
        (receipts_for(&app, "15550007022", &id).await > first).then_some(())
    })
    .await;

    let stored = inbound(&app, &account).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(received_events(&app, &account).await, 1);
    receiver
        .wait_for("message.received", PATIENCE, |r| {
            !of_type(r, "message.received").is_empty()
        })
        .await;
    // A text sent after it is the next thing on the socket: the repeat was not announced.
    phone_sends(
        &app,
        "15550007022",
        json!({ "to": "15550007021", "text": "the next one" }),
    )
    .await;
    let mut announced = Vec::new();
    while !announced.iter().any(|text| text == "the next one") {
        let frame = crate::websocket::next_json(&mut socket, PATIENCE)
            .await
            .expect("message_received on the socket");
        if frame["type"] == "message_received" {
            announced.push(frame["message"]["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(announced, ["said twice", "the next one"]);
    receiver
        .wait_for("both webhooks", PATIENCE, |r| {
            of_type(r, "message.received").len() >= 2
        })
        .await;
    let texts: Vec<Value> = of_type(&receiver.received(), "message.received")
        .iter()
        .map(|r| r.json()["data"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("said twice"), json!("the next one")]);
}

#[tokio::test]
async fn two_contacts_who_pick_the_same_message_id_are_both_stored() {
    let (app, receiver, account, _) = linked("15550007031", "15550007032").await;
    app.create_phone("15550007033").await;
    // Ids are chosen by the sending device; WhatsApp keeps messages apart by chat, sender
    // and id, so the second contact's message is not a repeat of the first one's.
    for (from, text) in [
        ("15550007032", "from the first"),
        ("15550007033", "from the second"),
    ] {
        let id = phone_sends(
            &app,
            from,
            json!({ "to": "15550007031", "text": text, "id": "3A00000000000000SAME" }),
        )
        .await;
        assert_eq!(id, "3A00000000000000SAME");
    }
    receiver
        .wait_for("both webhooks", PATIENCE, |r| {
            of_type(r, "message.received").len() >= 2
        })
        .await;
    let mut stored: Vec<(String, String)> = inbound(&app, &account)
        .await
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("15550007032".to_owned(), "from the first".to_owned()),
            ("15550007033".to_owned(), "from the second".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_photo_and_a_location_are_stored_with_their_type_and_a_placeholder() {
    let (app, receiver, account, secret) = linked("15550007031", "15550007032").await;
    let photo = phone_sends(
        &app,
        "15550007032",
        json!({ "to": "15550007031", "image": { "caption": "the view" } }),
    )
    .await;
    let place = phone_sends(
        &app,
        "15550007032",
        json!({
            "to": "15550007031",
            "location": { "latitude": 52.37, "longitude": 4.89, "name": "Dam Square" }
        }),
    )
    .await;

    let got = receiver
        .wait_for("both webhooks", PATIENCE, |r| {
            of_type(r, "message.received").len() >= 2
        })
        .await;
    let mut by_id = std::collections::HashMap::new();
    for delivery in of_type(&got, "message.received") {
        assert_signed(delivery, &secret);
        let data = delivery.json()["data"].clone();
        by_id.insert(data["wa_message_id"].as_str().unwrap().to_owned(), data);
    }
    assert_eq!(by_id[&photo]["type"], "image");
    assert_eq!(by_id[&photo]["text"], "[image] the view");
    assert_eq!(by_id[&place]["type"], "location");
    assert_eq!(by_id[&place]["text"], "[location] Dam Square");

    let listed = inbound(&app, &account).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for message in &listed {
        let id = message["wa_message_id"].as_str().unwrap();
        assert_eq!(message["type"], by_id[id]["type"]);
        assert_eq!(message["text"], by_id[id]["text"]);
        assert_eq!(message["from"], "15550007032");
    }
    let bad = app
        .control(
            Method::POST,
            "/phones/15550007032/send",
            Some(json!({ "to": "15550007031", "text": "both", "image": {} })),
        )
        .await;
    assert_eq!(bad.status(), 400, "the simulator takes one kind of content");
}
