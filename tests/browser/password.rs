//! Changing the password from the page: the page stays logged in on the new token and live,
//! another browser's session ends, and the API keys go only when the box is ticked.

use crate::{
    helpers::{PASSWORD, spawn_app},
    page::Page,
};

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
