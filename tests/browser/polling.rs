//! Live updates when the websocket is unreliable: blocked altogether (a proxy that does not
//! pass websockets), the page polls and still follows the link from QR code to connected; cut
//! once, it polls meanwhile and reconnects.

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

/// Keeps every WebSocket the page opens in `window.__sockets`, so the test can cut one, with
/// what the page sent on it and the cursors the server sent.
const RECORD_WEBSOCKETS: &str = "const NativeWebSocket = window.WebSocket; \
    window.__sockets = []; \
    window.WebSocket = class extends NativeWebSocket { \
    constructor(...args) { super(...args); this.sent = []; this.cursors = []; \
    window.__sockets.push(this); \
    this.addEventListener('message', (m) => { const c = JSON.parse(m.data).cursor; \
    if (c) this.cursors.push(c); }); } \
    send(data) { this.sent.push(JSON.parse(data)); super.send(data); } };";

#[tokio::test]
async fn a_dropped_websocket_is_reopened_and_events_flow_again() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let page = Page::open_with(&app, &[RECORD_WEBSOCKETS]).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.mark_no_reload().await;

    page.eval("window.__sockets.at(-1).close()").await;
    page.wait_for_text("#live-mode", "Polling").await;
    page.wait_for_text("#live-mode", "Live").await;
    assert_eq!(page.eval("window.__sockets.length").await, 2);
    // The new socket asks for what it missed since the last frame the old one heard.
    let first = page.eval("window.__sockets[0].sent[0]").await;
    assert!(first.get("since").is_none(), "{first}");
    let last_heard = page.eval("window.__sockets[0].cursors.at(-1)").await;
    let second = page.eval("window.__sockets[1].sent[0]").await;
    assert_eq!(second["type"], "authenticate");
    assert_eq!(second["since"], last_heard, "{second}");

    // The new socket carries the session's events: the link shows up by itself.
    page.click("#connect-btn").await;
    let code = page.wait_for_qr(None).await;
    app.scan(OWN_PHONE, &code).await;
    page.wait_for_text("#conn-state", "Connected").await;
    page.assert_not_reloaded().await;
}
