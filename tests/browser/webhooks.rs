//! Webhooks and replies in the dashboard: a webhook created in the page receives the signed
//! `message.received` of a text a contact sends, which also appears live in the conversation
//! view; an event that died against a broken receiver is replayed from the dead-letter list.

use std::time::Duration;

use crate::{
    helpers::spawn_app_with,
    page::Page,
    webhook_receiver::{Answer, Receiver, assert_signed},
    whatsapp_helpers::PATIENCE,
};

const OWN_PHONE: &str = "15550004441";
const CONTACT: &str = "15550004442";

#[tokio::test]
async fn replies_show_live_and_a_dead_webhook_is_replayed_from_the_page() {
    let app = spawn_app_with(|settings| {
        let hooks = &mut settings.webhooks;
        hooks.allow_private_targets = true;
        hooks.max_attempts = 1;
        hooks.poll_interval_ms = 100;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500)]);
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;
    app.create_phone(CONTACT).await;

    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.click("nav a[href='#/webhooks']").await;
    page.wait_until(
        "the webhooks view shows",
        "document.getElementById('hook-form').offsetParent !== null",
    )
    .await;
    page.fill("#hook-url", &receiver.url).await;
    page.click("#hook-form button[type=submit]").await;
    let secret = page.wait_for_any_text("#hook-secret").await;
    assert!(secret.starts_with("whsec_"));
    page.wait_for_text("#hooks-body", &receiver.url).await;

    // The contact writes; the first delivery fails (500) and, with a budget of one attempt,
    // is a dead letter.
    page.click("nav a[href='#/']").await;
    app.control_ok(
        reqwest::Method::POST,
        &format!("/phones/{CONTACT}/send"),
        Some(serde_json::json!({ "to": OWN_PHONE, "text": "are you open today?" })),
    )
    .await;
    page.wait_for_text("#conv-thread", "are you open today?")
        .await;
    page.screenshot("conversation").await;
    receiver
        .wait_for("the failing attempt", PATIENCE, |r| !r.is_empty())
        .await;

    page.click("nav a[href='#/webhooks']").await;
    page.click("#hooks-body tr:first-child button[aria-label^='Show deliveries']")
        .await;
    page.wait_for_text("#dead-body", "message.received").await;
    page.wait_for_text("#attempts-body", "500").await;
    page.screenshot("webhook-dead-letters").await;
    page.click("#dead-body tr:first-child button").await;
    let got = receiver
        .wait_for("the replayed event", PATIENCE, |r| r.len() >= 2)
        .await;
    assert_eq!(got[0].json()["id"], got[1].json()["id"]);
    assert_eq!(got[1].json()["data"]["text"], "are you open today?");
    assert_signed(&got[1], &secret);
    page.wait_until(
        "the dead letter is gone",
        "document.querySelectorAll('#dead-body tr').length === 0",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        page.csp_violations()
            .await
            .as_array()
            .is_none_or(|v| v.is_empty())
    );
}
