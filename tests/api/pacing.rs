//! Per-number pacing against the simulator: the gap between messages as the recipient's phone
//! sees it, a daily cap and quiet hours in the account's time zone (moving the account's
//! pacing clock instead of waiting), WhatsApp's rate-overlimit answers, and the admin route
//! that sets it all.

use chrono::{DateTime, Days, NaiveTime, TimeDelta, Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, error_code, spawn_app, spawn_app_with};
use crate::whatsapp_helpers::eventually;

const SENDER: &str = "15550007001";

/// An IANA zone (`Etc/GMT…`, a fixed offset) where it is now about noon, so that a day
/// boundary is hours away; with its offset from UTC in hours.
fn noon_zone() -> (String, i64) {
    let offset = 12 - i64::from(Utc::now().hour());
    let name = match offset {
        0 => "Etc/GMT".to_owned(),
        // POSIX signs: Etc/GMT-3 is three hours ahead of UTC.
        ahead if ahead > 0 => format!("Etc/GMT-{ahead}"),
        behind => format!("Etc/GMT+{}", -behind),
    };
    (name, offset)
}

/// Pacing with every limit off but those the test names.
fn only(settings: Value) -> Value {
    let mut all = json!({
        "enabled": true, "min_gap_ms": 0, "jitter_ms": 0, "per_minute": 0, "per_hour": 0,
        "per_day": 0, "quiet_hours": null, "time_zone": "UTC", "warmup_daily_caps": [],
    });
    for (key, value) in settings.as_object().expect("an object") {
        all[key] = value.clone();
    }
    all
}

impl TestApp {
    async fn set_pacing(&self, admin: &Account, user: &Account, settings: Value) -> Value {
        let response = self
            .api(
                Method::PUT,
                &format!("/api/admin/users/{}/pacing", user.id),
                &admin.token,
                Some(settings),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// An account with `settings` as its pacing, linked to the simulated phone [`SENDER`].
    async fn paced_account(&self, settings: Value) -> Account {
        let admin = self.new_admin().await;
        let user = self.new_account().await;
        self.set_pacing(&admin, &user, settings).await;
        self.create_phone(SENDER).await;
        self.link(&user, SENDER).await;
        user
    }

    async fn message(&self, token: &str, id: &str) -> Value {
        self.api(Method::GET, &format!("/api/messages/{id}"), token, None)
            .await
            .json()
            .await
            .unwrap()
    }

    async fn send_ok(&self, token: &str, to: &str, text: &str) -> String {
        let response = self.send_web(token, to, text).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Waits until message `id` is held by pacing; answers its `not_before`.
    async fn wait_for_not_before(&self, token: &str, id: &str) -> DateTime<Utc> {
        eventually("the message to be scheduled", || async {
            let message = self.message(token, id).await;
            assert_eq!(message["status"], "queued", "{message}");
            message["not_before"]
                .as_str()
                .map(|at| at.parse::<DateTime<Utc>>().unwrap())
        })
        .await
    }
}

fn user_id(account: &Account) -> uuid::Uuid {
    account.id.parse().unwrap()
}

#[tokio::test]
async fn messages_reach_the_recipient_at_least_the_gap_apart() {
    let app = spawn_app().await;
    let user = app
        .paced_account(only(json!({ "min_gap_ms": 1000, "jitter_ms": 400 })))
        .await;
    let recipient = "15550009001";
    app.create_phone(recipient).await;
    // A first message sets up the Signal session, so the five are alike to decrypt.
    let first = app.send_ok(&user.token, recipient, "hello").await;
    app.wait_for_message_status(&user.token, &first, "delivered")
        .await;

    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.send_ok(&user.token, recipient, &format!("paced {n}"))
                .await,
        );
    }
    // While they wait, the log says when each is due.
    let due = app.wait_for_not_before(&user.token, &ids[4]).await;
    assert!(due > Utc::now(), "the last one is due later: {due}");
    for id in &ids {
        app.wait_for_message_status(&user.token, id, "delivered")
            .await;
    }
    let mut arrivals: Vec<u64> = app
        .phone_messages(recipient)
        .await
        .iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("paced")))
        .map(|m| m["received_at"].as_u64().unwrap())
        .collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 5);
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= 1000,
            "two messages {} ms apart: {arrivals:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn a_daily_cap_holds_the_rest_until_the_next_day_in_the_users_zone() {
    let app = spawn_app().await;
    let (zone, offset) = noon_zone();
    let user = app
        .paced_account(only(json!({ "per_day": 3, "time_zone": zone })))
        .await;
    let recipient = "15550009002";
    app.create_phone(recipient).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            app.send_ok(&user.token, recipient, &format!("capped {n}"))
                .await,
        );
    }
    for id in &ids[..3] {
        app.wait_for_message_status(&user.token, id, "delivered")
            .await;
    }
    let not_before = app.wait_for_not_before(&user.token, &ids[3]).await;
    let local_now = Utc::now() + TimeDelta::hours(offset);
    let next_local_midnight = (local_now.date_naive() + Days::new(1))
        .and_time(NaiveTime::MIN)
        .and_utc()
        - TimeDelta::hours(offset);
    assert_eq!(not_before, next_local_midnight, "zone {zone}");
    assert_eq!(app.message(&user.token, &ids[3]).await["status"], "queued");
    assert_eq!(app.phone_messages(recipient).await.len(), 3);

    // The next day (on the account's pacing clock) it goes.
    botwave_actors::pacing::clock::advance_for_test(
        user_id(&user),
        next_local_midnight - Utc::now() + TimeDelta::seconds(1),
    );
    app.wait_for_message_status(&user.token, &ids[3], "delivered")
        .await;
}

#[tokio::test]
async fn quiet_hours_hold_messages_until_they_end() {
    let app = spawn_app().await;
    let (zone, offset) = noon_zone();
    let user = app
        .paced_account(only(json!({
            "quiet_hours": { "start": "11:00", "end": "14:00" },
            "time_zone": zone,
        })))
        .await;
    let recipient = "15550009003";
    app.create_phone(recipient).await;
    let id = app.send_ok(&user.token, recipient, "after the quiet").await;
    let not_before = app.wait_for_not_before(&user.token, &id).await;
    let local_now = Utc::now() + TimeDelta::hours(offset);
    let quiet_end = local_now
        .date_naive()
        .and_hms_opt(14, 0, 0)
        .unwrap()
        .and_utc()
        - TimeDelta::hours(offset);
    assert_eq!(not_before, quiet_end, "zone {zone}");
    // Held, not sent: the phone has nothing, the log shows it queued.
    assert!(app.phone_messages(recipient).await.is_empty());
    assert_eq!(app.message(&user.token, &id).await["status"], "queued");

    // The account's clock passes the end of the quiet hours: the message goes.
    botwave_actors::pacing::clock::advance_for_test(
        user_id(&user),
        quiet_end - Utc::now() + TimeDelta::seconds(1),
    );
    app.wait_for_message_status(&user.token, &id, "delivered")
        .await;
    app.wait_for_phone_text(recipient, "after the quiet").await;
}

#[tokio::test]
async fn rate_overlimit_slows_the_session_and_fails_nothing() {
    let app = spawn_app().await;
    // Pacing off: only WhatsApp's answers slow it down. A send asks WhatsApp about its
    // recipient two or three times (LID, devices, keys; whatsapp-rust falls back to the phone
    // number when the LID query fails), so eight refusals stop several sends in a row.
    let user = app.paced_account(only(json!({ "enabled": false }))).await;
    let recipients = ["15550009011", "15550009012", "15550009013", "15550009014"];
    for recipient in recipients {
        app.create_phone(recipient).await;
    }
    let switch = app
        .control_ok(
            Method::PUT,
            &format!("/phones/{SENDER}/rate-overlimit"),
            Some(json!({ "count": 8, "backoff_secs": 2 })),
        )
        .await;
    assert_eq!(switch["remaining"], 8);

    let mut ids = Vec::new();
    for recipient in recipients {
        ids.push(app.send_ok(&user.token, recipient, "over the limit?").await);
    }
    let mut waited = TimeDelta::zero();
    for id in &ids {
        let message = app
            .wait_for_message_status(&user.token, id, "delivered")
            .await;
        assert_eq!(
            message["attempts"], 1,
            "a refusal costs no attempt: {message}"
        );
        let created: DateTime<Utc> = message["created_at"].as_str().unwrap().parse().unwrap();
        let sent: DateTime<Utc> = message["sent_at"].as_str().unwrap().parse().unwrap();
        waited = waited.max(sent - created);
    }
    for recipient in recipients {
        app.wait_for_phone_text(recipient, "over the limit?").await;
    }
    let switch = app
        .control_ok(
            Method::GET,
            &format!("/phones/{SENDER}/rate-overlimit"),
            None,
        )
        .await;
    assert_eq!(
        switch["refused"], 8,
        "WhatsApp refused eight times: {switch}"
    );
    // The session waited out the backoff WhatsApp asked for (2 s) before sending again, at
    // least once and more while the refusals went on.
    assert!(waited >= TimeDelta::seconds(2), "waited only {waited}");
}

#[tokio::test]
async fn admins_set_check_and_reset_an_accounts_pacing() {
    // The shipped defaults (the harness switches pacing off).
    let app = spawn_app_with(|settings| {
        settings.pacing = botwave::config::PacingSettings::default();
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    let path = format!("/api/admin/users/{}/pacing", user.id);

    // Not for the account itself.
    let refused = app
        .api(
            Method::PUT,
            &path,
            &user.token,
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(error_code(refused).await, "forbidden");
    let refused = app.api(Method::GET, &path, &user.token, None).await;
    assert_eq!(refused.status(), 403);

    // The node's defaults until an admin sets some.
    let current: Value = app
        .api(Method::GET, &path, &admin.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current["custom"], false);
    assert_eq!(current["pacing"]["enabled"], true);
    assert_eq!(current["pacing"]["per_day"], 1000);

    for (body, field) in [
        (json!({ "min_gap_ms": -1 }), "min_gap_ms"),
        (json!({ "per_day": -5 }), "per_day"),
        (
            json!({ "quiet_hours": { "start": "25:00", "end": "07:00" } }),
            "quiet_hours.start",
        ),
        (
            json!({ "quiet_hours": { "start": "22:00", "end": "7h" } }),
            "quiet_hours.end",
        ),
        (json!({ "time_zone": "Mars/Olympus_Mons" }), "time_zone"),
        (json!({ "warmup_daily_caps": [10, 0] }), "warmup_daily_caps"),
    ] {
        let response = app
            .api(Method::PUT, &path, &admin.token, Some(body.clone()))
            .await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "validation_failed", "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let malformed = app
        .api(
            Method::PUT,
            &path,
            &admin.token,
            Some(json!({ "quiet_hours": "22-07" })),
        )
        .await;
    assert_eq!(malformed.status(), 400);
    let missing = app
        .api(
            Method::PUT,
            &format!("/api/admin/users/{}/pacing", uuid::Uuid::new_v4()),
            &admin.token,
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(missing.status(), 404);
    // Nothing was stored by the refused requests.
    let current: Value = app
        .api(Method::GET, &path, &admin.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(current["custom"], false);

    let set = app
        .set_pacing(
            &admin,
            &user,
            json!({ "min_gap_ms": 2500, "quiet_hours": { "start": "22:00", "end": "07:30" },
                    "time_zone": "Europe/Berlin" }),
        )
        .await;
    assert_eq!(set["custom"], true);
    assert_eq!(set["pacing"]["min_gap_ms"], 2500);
    assert_eq!(set["pacing"]["quiet_hours"]["end"], "07:30");
    assert_eq!(set["pacing"]["time_zone"], "Europe/Berlin");
    // Fields left out are the node's defaults.
    assert_eq!(set["pacing"]["per_day"], current["pacing"]["per_day"]);
    let read: Value = app
        .api(Method::GET, &path, &admin.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["pacing"], set["pacing"]);
    let audit = app.admin_get("/api/admin/audit", &admin.token).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "user.pacing.set"
                && entry["target_id"] == user.id.as_str()),
        "{audit}"
    );

    let reset: Value = app
        .api(Method::DELETE, &path, &admin.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reset["custom"], false);
    assert_eq!(reset["pacing"], current["pacing"]);
}

#[tokio::test]
async fn a_restarted_node_counts_what_the_number_sent_before() {
    let mut app = spawn_app().await;
    let (zone, _) = noon_zone();
    let user = app
        .paced_account(only(json!({ "per_day": 2, "time_zone": zone })))
        .await;
    let recipient = "15550009004";
    app.create_phone(recipient).await;
    for n in 0..2 {
        let id = app
            .send_ok(&user.token, recipient, &format!("before {n}"))
            .await;
        app.wait_for_message_status(&user.token, &id, "delivered")
            .await;
    }
    // The session starts afresh on a new node: its pacer is rebuilt from the database.
    app.restart_node().await;
    app.wait_for_state(&user.token, "connected").await;
    let id = app
        .send_ok(&user.token, recipient, "after the restart")
        .await;
    let not_before = app.wait_for_not_before(&user.token, &id).await;
    assert!(
        not_before > Utc::now() + TimeDelta::hours(6),
        "held until the next day: {not_before}"
    );
    assert_eq!(app.phone_messages(recipient).await.len(), 2);
}

#[tokio::test]
async fn an_admin_switches_pacing_off_for_an_account_under_paced_defaults() {
    // The shipped defaults: at least 4 s between two messages.
    let app = spawn_app_with(|settings| {
        settings.pacing = botwave::config::PacingSettings::default();
    })
    .await;
    let user = app.paced_account(json!({ "enabled": false })).await;
    let recipient = "15550009005";
    app.create_phone(recipient).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            app.send_ok(&user.token, recipient, &format!("unpaced {n}"))
                .await,
        );
    }
    for id in &ids {
        let message = app
            .wait_for_message_status(&user.token, id, "delivered")
            .await;
        assert!(message["not_before"].is_null(), "{message}");
    }
    let arrivals: Vec<u64> = app
        .phone_messages(recipient)
        .await
        .iter()
        .map(|m| m["received_at"].as_u64().unwrap())
        .collect();
    let spread = arrivals.iter().max().unwrap() - arrivals.iter().min().unwrap();
    // Paced by the defaults, the three would take 8 s at least.
    assert!(spread < 4_000, "three messages over {spread} ms");
}
