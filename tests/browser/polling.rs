//! When websockets are blocked (a proxy that does not pass them), the page falls back to
//! polling and still follows the link from QR code to connected.

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550004444";

/// Replaces the browser's WebSocket with one that can never connect, as a blocking proxy would.
const BLOCK_WEBSOCKETS: &str = "window.WebSocket = class { \
    constructor() { setTimeout(() => { this.onerror && this.onerror(new Event('error')); \
    this.onclose && this.onclose({ code: 1006, reason: '' }); }, 20); } \
    send() {} close() {} };";

#[tokio::test]
async fn without_websockets_the_page_polls_and_still_sees_the_link() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let page = Page::open_with(&app, &[BLOCK_WEBSOCKETS]).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_text("#user-email", &account.email).await;
    page.wait_for_text("#live-mode", "Polling").await;
    page.mark_no_reload().await;

    page.click("#connect-btn").await;
    let code = page.wait_for_qr(None).await;
    app.scan(OWN_PHONE, &code).await;
    page.wait_for_text("#conn-state", "Connected").await;
    page.wait_for_text("#conn-phone", &format!("+{OWN_PHONE}"))
        .await;
    page.assert_not_reloaded().await;
    assert_eq!(page.text("#live-mode").await, "Polling");
}
