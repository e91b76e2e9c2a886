//! The main path a new user takes, in one browser tab that never reloads: register, link
//! WhatsApp by scanning the QR code, send a message and watch it get delivered and read,
//! unlink and get a new QR code.

use reqwest::Method;
use serde_json::json;

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550001111";
const FRIEND: &str = "15559990001";
pub const PASSWORD: &str = "Browser-Tested-7";

#[tokio::test]
async fn register_link_send_watch_receipts_unlink_and_get_a_new_qr() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    // Receipts on command, so the test sees each step of the status reach the page.
    app.set_receipts(json!({ "mode": "manual" })).await;

    let page = Page::open(&app).await;
    page.screenshot("login").await;
    let email = format!("flow-{}@example.com", uuid::Uuid::new_v4().simple());
    page.register(&email, PASSWORD).await;
    page.wait_for_dashboard(&email).await;
    page.mark_no_reload().await;
    assert_eq!(page.state().await, "idle");
    assert!(page.is_displayed("#connect-btn").await);

    // Connect: the QR code appears, and it is the one the API holds for this account.
    page.click("#connect-btn").await;
    let code = page.wait_for_qr(None).await;
    let token = page
        .eval("sessionStorage.getItem('botwave.token')")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let from_api: serde_json::Value = app
        .api(Method::GET, "/api/whatsapp/qr", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(from_api["code"], code.as_str());
    page.wait_for_text("#conn-state", "Waiting for scan").await;
    assert!(
        !page.is_displayed("#demo-scan-btn").await,
        "the simulated scan is offered outside demo mode"
    );
    page.screenshot("qr").await;

    // The phone scans it: the page says so by itself.
    app.scan(OWN_PHONE, &code).await;
    page.wait_for_text("#conn-state", "Connected").await;
    page.wait_for_text("#conn-phone", &format!("+{OWN_PHONE}"))
        .await;
    assert!(!page.is_displayed("#qr-box").await, "the QR code stays up");
    assert!(page.is_displayed("#disconnect-btn").await);
    assert!(!page.is_displayed("#connect-btn").await);

    // Send from the form: the message is logged at once, then its status follows the phone.
    let text = "Hello from a real browser ✓";
    page.fill("#send-to", &format!("+{FRIEND}")).await;
    page.fill("#send-text", text).await;
    page.click("#send-btn").await;
    page.wait_for_text("#send-result", &format!("+{FRIEND}"))
        .await;
    page.wait_for_text("#log-body tr:first-child .body", text)
        .await;
    assert_eq!(
        page.eval("document.getElementById('send-text').value")
            .await,
        ""
    );
    app.wait_for_phone_text(FRIEND, text).await;
    page.wait_for_text("#log-body tr:first-child .status", "Sent")
        .await;

    let id = page
        .eval("document.querySelector('#log-body tr:first-child').dataset.id")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let sent = app.wait_for_message_status(&token, &id, "sent").await;
    let wa_id = sent["wa_message_id"].as_str().unwrap();
    for (kind, label) in [("delivered", "Delivered"), ("read", "Read")] {
        app.control_ok(
            reqwest::Method::POST,
            &format!("/phones/{FRIEND}/receipts"),
            Some(json!({ "id": wa_id, "type": kind })),
        )
        .await;
        page.wait_for_text("#log-body tr:first-child .status", label)
            .await;
    }
    page.wait_for_text("#log-live", "Read").await;
    page.screenshot("dashboard").await;
    page.browser.set_window_size(390, 844).await;
    page.screenshot("dashboard-phone").await;
    page.browser.set_window_size(1280, 900).await;

    // Unlink, then link again: a new QR code replaces the old one.
    page.click("#disconnect-btn").await;
    page.wait_until(
        "the page shows the account unlinked",
        "['idle','disconnected'].includes(document.getElementById('conn-state').dataset.state)",
    )
    .await;
    assert!(page.is_displayed("#connect-btn").await);
    assert_eq!(page.text("#conn-phone").await, "");
    page.click("#connect-btn").await;
    let second = page.wait_for_qr(Some(&code)).await;
    assert_ne!(second, code);

    page.assert_not_reloaded().await;
    assert_eq!(page.csp_violations().await, json!([]));
    // The message log kept its history through the unlink.
    assert!(page.text("#log-body").await.contains(text));
}
