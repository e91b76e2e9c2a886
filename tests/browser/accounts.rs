//! Logging in and registering: mistakes are explained next to the form, and logging out
//! forgets the session.

use crate::{
    flow::PASSWORD,
    helpers::{self, spawn_app},
    page::Page,
};

#[tokio::test]
async fn login_and_registration_mistakes_are_shown_inline() {
    let app = spawn_app().await;
    let existing = app.new_account().await;
    let page = Page::open(&app).await;

    // Wrong password.
    page.login(&existing.email, "Not-The-Password-1").await;
    page.wait_for_text("#login-error", "Wrong email or password")
        .await;
    assert!(page.is_displayed("#login-form").await);
    assert!(!page.is_displayed("#view-home").await);
    page.screenshot("login-error").await;

    // A weak password, and an email that is taken.
    let fresh = format!("new-{}@example.com", uuid::Uuid::new_v4().simple());
    page.register(&fresh, "aaaaaaaaaaaa").await;
    let weak = page.wait_for_any_text("#register-password-error").await;
    assert!(!weak.is_empty(), "no explanation for a weak password");
    assert_eq!(
        page.eval("document.getElementById('register-password').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    page.register(&existing.email, PASSWORD).await;
    page.wait_for_text("#register-email-error", "already exists")
        .await;

    // The right password gets in; logging out comes back to the login form.
    // Keyboard only: Enter in the password field submits the form.
    page.goto("#/login").await;
    page.fill("#login-email", &existing.email).await;
    page.fill("#login-password", &format!("{}\u{E007}", helpers::PASSWORD))
        .await;
    page.wait_for_dashboard(&existing.email).await;
    page.click("#logout").await;
    page.wait_until(
        "the login form is back",
        "document.getElementById('login-form').offsetParent !== null",
    )
    .await;
    assert_eq!(
        page.eval("sessionStorage.getItem('botwave.token')").await,
        serde_json::Value::Null
    );
}
