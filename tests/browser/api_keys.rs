//! API keys from the page: the secret is shown once with a ready-to-paste curl command, that
//! command sends a message, the message shows up in the log, and a revoked key stops working.

use serde_json::Value;

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550003333";
const FRIEND: &str = "15559990003";
/// The number in the page's curl example; the test sends to its own simulated friend instead.
const EXAMPLE_NUMBER: &str = "+15551234567";

/// The pieces of the page's curl command: URL, API key and JSON body.
fn parse_curl(curl: &str) -> (String, String, String) {
    let between = |start: &str, end: char| {
        let from = curl
            .find(start)
            .unwrap_or_else(|| panic!("{start} in {curl}"))
            + start.len();
        let to = curl[from..].find(end).unwrap() + from;
        curl[from..to].to_owned()
    };
    (
        between("curl -X POST ", ' '),
        between("X-Api-Key: ", '\''),
        between("-d '", '\''),
    )
}

#[tokio::test]
async fn a_key_created_in_the_page_sends_with_the_shown_curl_command_until_revoked() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;

    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.click("nav a[href='#/keys']").await;
    page.wait_until(
        "the keys view shows",
        "document.getElementById('key-form').offsetParent !== null",
    )
    .await;

    page.fill("#key-name", "shop notifications").await;
    page.click("#key-form button[type=submit]").await;
    let secret = page.wait_for_any_text("#key-secret").await;
    page.wait_for_text("#keys-body", "shop notifications").await;
    let prefix_shown = page.text("#keys-body tr:first-child code").await;
    assert!(
        secret.starts_with(prefix_shown.trim_end_matches('…')),
        "the list shows {prefix_shown}, not a prefix of the key"
    );
    let curl = page.text("#key-curl").await;
    page.screenshot("api-keys").await;

    let (url, key, body) = parse_curl(&curl);
    assert_eq!(key, secret);
    assert_eq!(url, format!("{}/api/send", app.address));
    let body = body.replace(EXAMPLE_NUMBER, &format!("+{FRIEND}"));
    let text = serde_json::from_str::<Value>(&body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = app
        .client
        .post(&url)
        .header("X-Api-Key", &key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{:?}", sent.text().await);
    app.wait_for_phone_text(FRIEND, &text).await;

    // The dashboard's log picks it up live, marked as sent through the API.
    page.click("nav a[href='#/']").await;
    page.wait_for_text("#log-body tr:first-child .body", &text)
        .await;
    assert_eq!(page.text("#log-body tr:first-child .source").await, "API");

    // Leaving the keys view forgot the secret; revoking takes a confirming second click.
    page.click("nav a[href='#/keys']").await;
    assert!(!page.is_displayed("#key-secret-panel").await);
    page.wait_for_text("#keys-body", "shop notifications").await;
    page.click("#keys-body tr:first-child button").await;
    page.wait_for_text("#keys-body tr:first-child button", "Really")
        .await;
    page.click("#keys-body tr:first-child button").await;
    page.wait_until(
        "the key is gone from the list",
        "document.querySelectorAll('#keys-body tr').length === 0",
    )
    .await;
    let refused = app
        .client
        .post(&url)
        .header("X-Api-Key", &key)
        .json(&serde_json::json!({ "to": FRIEND, "text": "after revoking" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn the_create_form_chooses_scopes_and_an_own_rate_and_the_list_shows_them() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.limits.requests_per_second = 10.0;
        settings.limits.burst = 50;
    })
    .await;
    let account = app.new_account().await;
    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.click("nav a[href='#/keys']").await;
    page.wait_until(
        "the keys view shows",
        "document.getElementById('key-form').offsetParent !== null",
    )
    .await;

    // A rate above the account's is refused at its field.
    page.fill("#key-name", "reporting").await;
    page.click("#key-scope-messages-send").await;
    page.click("#key-scope-webhooks-manage").await;
    page.click("#key-scope-session-read").await;
    page.fill("#key-rate", "25").await;
    page.click("#key-form button[type=submit]").await;
    let error = page.wait_for_any_text("#key-rate-error").await;
    assert!(error.contains("at most the account's 10"), "{error}");

    page.fill("#key-rate", "2").await;
    page.fill("#key-burst", "5").await;
    page.click("#key-form button[type=submit]").await;
    let secret = page.wait_for_any_text("#key-secret").await;
    page.wait_for_text("#keys-body", "reporting").await;
    assert_eq!(
        page.text("#keys-body tr:first-child .scopes").await,
        "messages:read"
    );
    assert_eq!(
        page.text("#keys-body tr:first-child .rate").await,
        "2/s, burst 5"
    );
    assert_eq!(page.text("#key-rate-error").await, "");

    // The key does what the form chose, and no more.
    let send = app
        .client
        .post(format!("{}/api/send", app.address))
        .header("X-Api-Key", &secret)
        .json(&serde_json::json!({ "to": FRIEND, "text": "not allowed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 403);
    let read = app
        .client
        .get(format!("{}/api/messages", app.address))
        .header("X-Api-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["ratelimit-limit"], "5");
}
