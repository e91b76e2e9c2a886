//! A websocket that reconnects is caught up: a snapshot of the session, then the status of
//! every message of its user that moved while it was away — and nothing of anyone else's.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::spawn_app;
use crate::websocket::{Socket, close_frame, connect, next_json, reconnected};

const ALICE_PHONE: &str = "15550002221";
const BOB_PHONE: &str = "15550002222";
const FRIEND: &str = "15559990002";

/// Frames up to `replay_complete` (or `resync`), which ends a catch-up.
async fn catch_up_frames(socket: &mut Socket) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_json(socket, Duration::from_secs(10))
            .await
            .expect("the catch-up ends with replay_complete or resync");
        let end = frame["type"] == "replay_complete" || frame["type"] == "resync";
        frames.push(frame);
        if end {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_socket_that_reconnects_gets_what_it_missed_and_nothing_of_anyone_else() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    app.link(&alice, ALICE_PHONE).await;
    app.link(&bob, BOB_PHONE).await;

    // Alice's dashboard is connected, then its link drops; it keeps the last cursor it saw.
    let (socket, snapshot) = reconnected(&app, &alice.token, None).await;
    assert_eq!(snapshot["session"]["state"], "connected", "{snapshot}");
    assert_eq!(snapshot["session"]["phone"], ALICE_PHONE, "{snapshot}");
    let cursor = snapshot["cursor"].as_str().unwrap().to_owned();
    drop(socket);

    // While it is away, alice's message goes all the way to read, and bob sends one too.
    let sent: Value = app
        .send_web(&alice.token, FRIEND, "sent while the socket was down")
        .await
        .json()
        .await
        .unwrap();
    let alices = sent["id"].as_str().unwrap().to_owned();
    let bobs: Value = app
        .send_web(&bob.token, FRIEND, "bob's own business")
        .await
        .json()
        .await
        .unwrap();
    let read = app
        .wait_for_message_status(&alice.token, &alices, "read")
        .await;
    app.wait_for_message_status(&bob.token, bobs["id"].as_str().unwrap(), "read")
        .await;

    let (mut socket, snapshot) = reconnected(&app, &alice.token, Some(&cursor)).await;
    assert_eq!(snapshot["session"]["state"], "connected");
    let frames = catch_up_frames(&mut socket).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "replay_complete", "{frames:?}");
    let replayed: Vec<&Value> = frames
        .iter()
        .filter(|frame| frame["type"] == "message_status")
        .collect();
    assert_eq!(end["count"], replayed.len(), "{frames:?}");
    let mine = replayed
        .iter()
        .find(|frame| frame["message_id"] == alices.as_str())
        .unwrap_or_else(|| panic!("the missed message is replayed: {frames:?}"));
    assert_eq!(mine["status"], "read", "its current status: {mine}");
    assert_eq!(mine["at"], read["read_at"], "{mine}");
    assert_eq!(mine["replayed"], true);
    assert!(
        replayed
            .iter()
            .all(|frame| frame["user_id"] == alice.id.as_str()
                && frame["message_id"] != bobs["id"]),
        "only alice's messages: {frames:?}"
    );
}

#[tokio::test]
async fn a_socket_away_too_long_is_told_to_read_everything_again() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let long_ago = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let (mut socket, snapshot) = reconnected(&app, &account.token, Some(&long_ago)).await;
    assert_eq!(snapshot["session"]["state"], "idle", "{snapshot}");
    let frames = catch_up_frames(&mut socket).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "resync");
    assert_eq!(frames[0]["reason"], "too_far_behind");

    // A fresh connection (no `since`) gets its snapshot and then nothing but live events.
    let (mut fresh, _) = reconnected(&app, &account.token, None).await;
    assert_eq!(
        next_json(&mut fresh, Duration::from_millis(500)).await,
        None
    );
}

#[tokio::test]
async fn a_since_that_is_not_a_time_is_refused_with_a_reason() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let mut socket = connect(&app).await;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({ "type": "authenticate", "token": account.token, "since": "yesterday" })
                .to_string(),
        ))
        .await
        .unwrap();
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, CloseCode::from(4001));
    assert!(reason.contains("since"), "{reason}");
}
