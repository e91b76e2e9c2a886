//! Changing the password from the page: the page stays logged in on the new token and live,
//! another browser's session ends, and the API keys go only when the box is ticked. And the
//! forgotten password: the link asked for on the login page arrives by email and its page sets
//! the new one.

use std::time::Duration;

use crate::{
    helpers::{PASSWORD, spawn_app, spawn_app_with},
    page::Page,
    smtp_sink::SmtpSink,
};

#[tokio::test]
async fn a_forgotten_password_is_reset_from_the_login_page_and_the_emailed_link() {
    let mut sink = SmtpSink::start().await;
    let url = sink.url.clone();
    let app = spawn_app_with(|settings| {
        settings.smtp.url = Some(url);
        settings.smtp.from = Some("botwave <noreply@example.com>".into());
    })
    .await;
    let account = app.new_account().await;

    let page = Page::open(&app).await;
    page.goto("#/login").await;
    page.click("#forgot-link").await;
    page.fill("#forgot-email", &account.email).await;
    page.click("#forgot-form button[type=submit]").await;
    page.wait_for_text("#forgot-status", "on its way").await;

    let email = sink
        .next(Duration::from_secs(10))
        .await
        .expect("the reset email arrives");
    let prefix = format!("{}/reset-password?token=", app.address);
    let link = email
        .body
        .split_whitespace()
        .find(|word| word.starts_with(&prefix))
        .expect("a link to this node's reset page");
    page.goto(link.strip_prefix(&format!("{}/", app.address)).unwrap())
        .await;

    // A weak password is refused at its field; a good one is set and the login form says so.
    page.fill("#reset-password", "weak").await;
    page.click("#reset-form button[type=submit]").await;
    page.wait_for_text("#reset-password-error", "at least")
        .await;
    page.fill("#reset-password", "Brand-New-Horse-9").await;
    page.click("#reset-form button[type=submit]").await;
    page.wait_for_text("#login-notice", "password was changed")
        .await;
    assert!(
        page.is_displayed("#login-form").await,
        "the login form follows"
    );
    let address: String = page
        .eval("location.pathname + location.search")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(address, "/", "the spent token left the address bar");

    page.fill("#login-email", &account.email).await;
    page.fill("#login-password", "Brand-New-Horse-9").await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for_dashboard(&account.email).await;
    assert_eq!(app.login(&account.email, PASSWORD).await.status(), 401);
    assert_eq!(page.csp_violations().await, serde_json::json!([]));
}

#[tokio::test]
async fn changing_the_password_keeps_this_page_live_and_revokes_keys_only_when_asked() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let key = app.create_api_key(&account).await;

    let page = Page::open(&app).await;
    page.login(&account.email, PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.click("nav a[href='#/keys']").await;
    page.wait_for_text("#keys-body", "integration").await;
    page.mark_no_reload().await;

    // A wrong current password is shown at its field; nothing changes.
    page.fill("#password-current", "Wrong-Guess-1").await;
    page.fill("#password-new", "Another-Horse-43").await;
    page.click("#password-form button[type=submit]").await;
    page.wait_for_text("#password-current-error", "wrong").await;

    page.fill("#password-current", PASSWORD).await;
    page.fill("#password-new", "Another-Horse-43").await;
    page.click("#password-form button[type=submit]").await;
    page.wait_for_text("#password-done", "1 API key still work")
        .await;
    assert_eq!(app.me(&key).await.status(), 200, "keys stay unless asked");
    assert_eq!(
        app.me(&account.token).await.status(),
        401,
        "older tokens are void"
    );
    // The page moved to the new token and its socket is live again.
    page.wait_for_text("#live-mode", "Live").await;
    page.assert_not_reloaded().await;

    page.fill("#password-current", "Another-Horse-43").await;
    page.fill("#password-new", "Third-Horse-44").await;
    page.click("#password-revoke-keys").await;
    page.click("#password-form button[type=submit]").await;
    page.wait_for_text("#password-done", "1 API key revoked")
        .await;
    assert_eq!(app.me(&key).await.status(), 401);
    page.wait_until(
        "the revoked key is gone from the list",
        "document.querySelectorAll('#keys-body tr').length === 0",
    )
    .await;
    page.wait_for_text("#live-mode", "Live").await;
    page.assert_not_reloaded().await;
}
