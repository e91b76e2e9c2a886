//! The send form puts the API's validation errors next to the field they are about.

use crate::{helpers::spawn_app, page::Page};

#[tokio::test]
async fn an_invalid_number_and_an_empty_text_are_shown_at_their_fields() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;

    page.fill("#send-to", "12ab").await;
    page.fill("#send-text", "hello").await;
    page.click("#send-btn").await;
    let error = page.wait_for_any_text("#send-to-error").await;
    assert!(!error.is_empty());
    assert_eq!(
        page.eval("document.getElementById('send-to').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert_eq!(page.eval("document.activeElement.id").await, "send-to");
    page.screenshot("send-invalid-number").await;

    // A good number with no text: now the text is what is wrong, and the number is fine.
    page.fill("#send-to", "+49 151 2345678").await;
    page.fill("#send-text", "   ").await;
    page.click("#send-btn").await;
    page.wait_until(
        "the text error shows",
        "document.getElementById('send-text-error').textContent.length > 0",
    )
    .await;
    assert_eq!(page.text("#send-to-error").await, "");

    // Valid input on an unlinked account: told to link first, nothing logged.
    page.fill("#send-text", "hello").await;
    page.click("#send-btn").await;
    page.wait_for_text("#send-error", "Link your WhatsApp")
        .await;
    assert_eq!(page.text("#send-text-error").await, "");
    assert_eq!(
        page.eval("document.querySelectorAll('#log-body tr').length")
            .await,
        0
    );
}
