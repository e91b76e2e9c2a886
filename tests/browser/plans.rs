//! The plan card: the usage bar shows the plan's daily quota and what was sent against it, and
//! the upgrade button takes the browser to the Stripe Checkout page that Stripe (here a local
//! stand-in) answered for the plan's price.

use reqwest::Method;
use serde_json::json;

use crate::{
    helpers::spawn_app_with,
    page::Page,
    stripe_standin::{self, StripeStandIn},
};

const OWN_PHONE: &str = "15550008801";
const FRIEND: &str = "15550008802";

#[tokio::test]
async fn the_usage_bar_shows_the_quota_and_upgrade_leads_to_stripe_checkout() {
    let standin = StripeStandIn::start().await;
    let base = standin.base.clone();
    let app = spawn_app_with(move |settings| {
        settings.plans.enforce = true;
        settings.billing.stripe_secret_key = Some(stripe_standin::SECRET_KEY.into());
        settings.billing.stripe_webhook_secret = Some(stripe_standin::WEBHOOK_SECRET.into());
        settings.billing.stripe_api_base = base;
    })
    .await;
    let admin = app.new_admin().await;
    let (status, pro) = app
        .admin_call(
            Method::POST,
            "/api/admin/plans",
            &admin.token,
            Some(
                json!({ "name": "pro", "messages_per_day": 5000, "price_amount": 1900,
                         "price_currency": "usd", "stripe_price_id": "price_pro_browser" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{pro}");
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    app.link(&account, OWN_PHONE).await;
    for text in ["one", "two"] {
        assert_eq!(
            app.send_web(&account.token, FRIEND, text).await.status(),
            202
        );
    }

    let page = Page::open(&app).await;
    page.login(&account.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&account.email).await;
    page.wait_for_text("#plan-name", "free").await;
    page.wait_for_text("#usage-day", "2 of 100").await;
    assert_eq!(
        page.eval("[document.getElementById('usage-day-bar').value, document.getElementById('usage-day-bar').max]")
            .await,
        json!([2, 100])
    );
    page.wait_for_text("#usage-month", "2 of 1,000").await;

    // A third message moves the bar live.
    assert_eq!(
        app.send_web(&account.token, FRIEND, "three").await.status(),
        202
    );
    page.wait_for_text("#usage-day", "3 of 100").await;
    page.screenshot("plan").await;

    page.wait_for_text("#plan-upgrades", "Upgrade to pro").await;
    page.click(".upgrade-btn").await;
    page.wait_until(
        "the browser is on the stand-in's checkout page",
        "location.pathname.startsWith('/checkout/') && document.getElementById('standin') !== null",
    )
    .await;
    let sessions = standin.calls_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].form["line_items[0][price]"],
        "price_pro_browser"
    );
    let answered = sessions[0].answer["url"].as_str().unwrap().to_owned();
    let at = page.eval("location.href").await;
    assert_eq!(at.as_str(), Some(answered.as_str()));
}

#[tokio::test]
async fn an_admin_creates_a_plan_and_moves_an_account_onto_it_from_the_pages() {
    let app = spawn_app_with(|settings| settings.plans.enforce = true).await;
    let admin = app.new_admin().await;
    let account = app.new_account().await;

    let page = Page::open(&app).await;
    page.login(&admin.email, crate::helpers::PASSWORD).await;
    page.wait_for_dashboard(&admin.email).await;
    page.goto("#/admin/plans").await;
    page.wait_for_text("#admin-plans-body", "free").await;
    page.fill("#admin-plan-name", "team").await;
    page.fill("#admin-plan-messages_per_day", "7").await;
    page.fill("#admin-plan-api_keys", "5").await;
    page.click("#admin-plan-save").await;
    page.wait_for_text("#admin-plans-body", "team").await;
    // A bad value is explained at its field.
    page.fill("#admin-plan-name", "free").await;
    page.click("#admin-plan-save").await;
    page.wait_for_text("#admin-plan-error", "already exists")
        .await;

    page.goto("#/admin/users").await;
    page.wait_for_text("#admin-users-body", &account.email)
        .await;
    let selector = format!("tr[data-user-id='{}'] select.plan-select", account.id);
    page.wait_until(
        "the account's plan select lists the new plan",
        &format!(
            "[...document.querySelector(\"{selector}\").options].some(o => o.text === 'team')"
        ),
    )
    .await;
    page.eval(&format!(
        "(() => {{ const s = document.querySelector(\"{selector}\"); \
           s.value = [...s.options].find(o => o.text === 'team').value; \
           s.dispatchEvent(new Event('change')); return true; }})()"
    ))
    .await;
    page.wait_for_text(
        &format!("tr[data-user-id='{}'] .plan-usage", account.id),
        "today 0/7",
    )
    .await;
    let usage: serde_json::Value = app
        .api(Method::GET, "/api/usage", &account.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["plan"]["name"], "team");
    assert_eq!(usage["api_keys"]["limit"], 5);
}
