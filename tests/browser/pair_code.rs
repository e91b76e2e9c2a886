//! Linking by phone number from the page: the form's refusal shows at the field, a good number
//! shows the link code, and the simulated phone typing it connects the page live.

use reqwest::Method;
use serde_json::json;

use crate::{helpers::spawn_app, page::Page};

const OWN_PHONE: &str = "15550005555";

#[tokio::test]
async fn a_link_code_shown_on_the_page_and_typed_on_the_phone_connects_it() {
    let app = spawn_app().await;
    let account = app.new_account().await;
    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.mark_no_reload().await;
    assert!(page.is_displayed("#pair-code-form").await);
    assert!(!page.is_displayed("#pair-code-box").await);

    page.fill("#pair-phone", "my phone").await;
    page.click("#pair-code-btn").await;
    let error = page.wait_for_any_text("#pair-phone-error").await;
    assert!(!error.is_empty());
    assert_eq!(
        page.eval("document.getElementById('pair-phone').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert!(!page.is_displayed("#pair-code-box").await);

    page.fill("#pair-phone", "+1 555 000 5555").await;
    page.click("#pair-code-btn").await;
    let code = page
        .wait_until(
            "the link code shows",
            "(() => { const box = document.getElementById('pair-code-box'); \
             return !box.hidden && document.getElementById('pair-code').dataset.code; })()",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 8);
    let shown = page.text("#pair-code").await;
    assert_eq!(shown, format!("{}-{}", &code[..4], &code[4..]));
    assert_eq!(page.text("#pair-phone-error").await, "");
    page.screenshot("pair-code-shown").await;

    app.control_ok(
        Method::POST,
        "/pair-code",
        Some(json!({ "phone": OWN_PHONE, "code": shown })),
    )
    .await;
    page.wait_for_text("#conn-state", "Connected").await;
    page.wait_for_text("#conn-phone", &format!("+{OWN_PHONE}"))
        .await;
    assert!(!page.is_displayed("#pair-code-box").await);
    assert!(!page.is_displayed("#pair-code-form").await);
    page.assert_not_reloaded().await;
}
