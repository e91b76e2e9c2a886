//! Two accounts on one node: one user's page never shows another user's QR code, messages or
//! session state — not even to an admin, whose websocket hears every session's state.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::{helpers::spawn_app, page::Page};

const ALICE_PHONE: &str = "15550002222";
const FRIEND: &str = "15559990002";

#[tokio::test]
async fn a_second_users_page_never_shows_the_first_users_qr_or_messages() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let alice = app.new_account().await;
    app.link(&alice, ALICE_PHONE).await;
    let secret = "Alice's private message";
    let sent: Value = app
        .send_web(&alice.token, FRIEND, secret)
        .await
        .json()
        .await
        .unwrap();
    app.wait_for_message_status(&alice.token, sent["id"].as_str().unwrap(), "delivered")
        .await;

    let bob = app.new_admin().await;
    let page = Page::open(&app).await;
    page.login(&bob.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&bob.email).await;
    page.click("#connect-btn").await;
    let bobs_code = page.wait_for_qr(None).await;

    // Alice unlinks and links again while Bob watches: her events must not reach his page.
    let unlinked = app
        .api(Method::POST, "/api/whatsapp/disconnect", &alice.token, None)
        .await;
    assert_eq!(unlinked.status(), 200);
    app.initialize(&alice.token).await;
    let alices_qr = app.wait_for_qr(&alice.token, None).await;
    let alices_code = alices_qr["code"].as_str().unwrap();
    assert_ne!(alices_code, bobs_code);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let shown = page
        .eval("document.getElementById('qr').dataset.code")
        .await;
    assert_ne!(shown, alices_code, "Bob's page shows Alice's QR code");
    let bobs_current: Value = app
        .api(Method::GET, "/api/whatsapp/qr", &bob.token, None)
        .await
        .json()
        .await
        .unwrap();
    page.wait_until(
        "Bob's page shows his own current QR code",
        &format!(
            "document.getElementById('qr').dataset.code === {}",
            bobs_current["code"]
        ),
    )
    .await;
    assert_eq!(page.state().await, "qr");
    let everything = page.eval("document.body.innerText").await;
    let everything = everything.as_str().unwrap();
    assert!(
        !everything.contains(secret),
        "Bob's page shows Alice's message"
    );
    assert!(
        !everything.contains(ALICE_PHONE),
        "Bob's page shows Alice's number"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#log-body tr').length")
            .await,
        0
    );
}
