//! Pacing in the dashboard: a message pacing holds shows as scheduled, with its time, in the
//! message log; an admin sets an account's pacing from the Users page.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550005601";
const FRIEND: &str = "15559990601";

#[tokio::test]
async fn a_held_message_shows_as_scheduled_and_an_admin_sets_pacing_from_the_users_page() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let account = app.new_account().await;
    app.create_phone(FRIEND).await;
    // Quiet from an hour ago to two hours from now: the message waits.
    let now = chrono::Utc::now();
    let start = (now - chrono::TimeDelta::hours(1))
        .format("%H:%M")
        .to_string();
    let end = (now + chrono::TimeDelta::hours(2))
        .format("%H:%M")
        .to_string();
    let (status, body) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{}/pacing", account.id),
            &admin.token,
            Some(json!({
                "enabled": true, "min_gap_ms": 0, "jitter_ms": 0, "warmup_daily_caps": [],
                "quiet_hours": { "start": start, "end": end }, "time_zone": "UTC",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.link(&account, OWN_PHONE).await;

    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    let sent: Value = app
        .send_web(&account.token, FRIEND, "held by the quiet hours")
        .await
        .json()
        .await
        .unwrap();
    let row = format!("#log-body tr[data-id='{}']", sent["id"].as_str().unwrap());
    let badge = page
        .wait_for_text(&format!("{row} .status"), "Scheduled")
        .await;
    assert!(badge.starts_with("Scheduled "), "{badge}");
    let message: Value = app
        .api(
            Method::GET,
            &format!("/api/messages/{}", sent["id"].as_str().unwrap()),
            &account.token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["status"], "queued");
    assert!(message["not_before"].as_str().is_some(), "{message}");

    // The admin sets the account's daily cap from its row.
    let admin_page = Page::open(&app).await;
    admin_page
        .login(&admin.email, crate::helpers::PASSWORD)
        .await;
    admin_page.wait_for_dashboard(&admin.email).await;
    admin_page.goto("#/admin/users").await;
    let user_row = format!("#admin-users-body tr[data-user-id='{}']", account.id);
    admin_page
        .click(&format!("{user_row} button[aria-label^='Pacing']"))
        .await;
    let per_day = format!("#admin-pacing-per_day-{}", account.id);
    admin_page
        .wait_until(
            "the pacing form shows",
            &format!("document.querySelector(\"{per_day}\") !== null"),
        )
        .await;
    admin_page.fill(&per_day, "7").await;
    admin_page
        .click(&format!("{user_row} .pacing-form button[type=submit]"))
        .await;
    admin_page
        .wait_for_text(&format!("{user_row} .reset-slot"), "Pacing saved.")
        .await;
    let stored = app
        .admin_get(
            &format!("/api/admin/users/{}/pacing", account.id),
            &admin.token,
        )
        .await;
    assert_eq!(stored["pacing"]["per_day"], 7);
    assert_eq!(stored["pacing"]["quiet_hours"]["start"], start.as_str());
}
