//! Billing with Stripe, against a stand-in for Stripe's API started by the test: checkout
//! creates the session with the plan's price and the account's customer; signed events move
//! the account between plans, once each; badly signed ones are 400 and change nothing; a failed
//! payment downgrades once the grace period is over.

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Account, TestApp, error_code, spawn_app, spawn_app_with},
    stripe_standin::{self, StripeStandIn, WEBHOOK_SECRET},
};

const PRICE: &str = "price_pro_monthly";

async fn billing_app(standin: &StripeStandIn, grace_period_secs: u64) -> TestApp {
    let base = standin.base.clone();
    spawn_app_with(move |settings| {
        settings.plans.enforce = true;
        settings.billing.stripe_secret_key = Some(stripe_standin::SECRET_KEY.into());
        settings.billing.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        settings.billing.stripe_api_base = base;
        settings.billing.grace_period_secs = grace_period_secs;
    })
    .await
}

impl TestApp {
    /// An admin-made plan sold through Stripe at [`PRICE`]; answers its id.
    async fn pro_plan(&self) -> String {
        let admin = self.new_admin().await;
        let (status, created) = self
            .admin_call(
                Method::POST,
                "/api/admin/plans",
                &admin.token,
                Some(json!({
                    "name": "pro", "messages_per_day": 10000, "messages_per_month": 200000,
                    "api_keys": 20, "webhook_endpoints": 20, "price_amount": 1900,
                    "price_currency": "usd", "stripe_price_id": PRICE,
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["plan"]["id"].as_str().unwrap().to_owned()
    }

    async fn plan_of(&self, account: &Account) -> Value {
        self.api(Method::GET, "/api/usage", &account.token, None)
            .await
            .json()
            .await
            .unwrap()
    }

    /// POSTs `body` to the Stripe webhook with `signature`; answers status and JSON.
    async fn stripe_event(&self, body: &str, signature: Option<String>) -> (u16, Value) {
        let mut request = self
            .request(Method::POST, "/api/billing/stripe/webhook")
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn signed_event(&self, body: &str) -> (u16, Value) {
        let now = Utc::now().timestamp();
        self.stripe_event(
            body,
            Some(stripe_standin::signature(WEBHOOK_SECRET, now, body)),
        )
        .await
    }
}

fn completed(event_id: &str, account: &Account, plan_id: &str, customer: &str) -> String {
    stripe_standin::event(
        event_id,
        "checkout.session.completed",
        Utc::now().timestamp(),
        json!({
            "id": "cs_test_standin2", "object": "checkout.session", "mode": "subscription",
            "status": "complete", "payment_status": "paid", "customer": customer,
            "subscription": "sub_standin1", "client_reference_id": account.id,
            "metadata": { "botwave_user_id": account.id, "botwave_plan_id": plan_id },
        }),
    )
}

fn subscription_event(
    event_id: &str,
    kind: &str,
    created: i64,
    customer: &str,
    status: &str,
) -> String {
    stripe_standin::event(
        event_id,
        kind,
        created,
        json!({
            "id": "sub_standin1", "object": "subscription", "customer": customer,
            "status": status,
            "items": { "object": "list", "data": [
                { "id": "si_1", "object": "subscription_item",
                  "price": { "id": PRICE, "object": "price", "unit_amount": 1900, "currency": "usd" } }
            ]},
        }),
    )
}

fn invoice_event(event_id: &str, kind: &str, customer: &str) -> String {
    stripe_standin::event(
        event_id,
        kind,
        Utc::now().timestamp(),
        json!({ "id": "in_1", "object": "invoice", "customer": customer,
                "subscription": "sub_standin1", "attempt_count": 1 }),
    )
}

#[tokio::test]
async fn checkout_and_signed_events_move_the_account_between_plans_once_each() {
    let standin = StripeStandIn::start().await;
    let app = billing_app(&standin, 3600).await;
    let pro = app.pro_plan().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;

    let plans: Value = app
        .api(Method::GET, "/api/plans", &alice.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plans["billing_enabled"], true);
    assert!(
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["stripe_price_id"] == PRICE)
    );

    let checkout = app
        .api(
            Method::POST,
            "/api/billing/checkout",
            &alice.token,
            Some(json!({ "plan_id": pro })),
        )
        .await;
    assert_eq!(checkout.status(), 200);
    let url = checkout.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let customers = standin.calls_to("/v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].form["email"], alice.email);
    assert_eq!(customers[0].form["metadata[botwave_user_id]"], alice.id);
    assert_eq!(
        customers[0].authorization,
        format!("Bearer {}", stripe_standin::SECRET_KEY)
    );
    let sessions = standin.calls_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0].form;
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["line_items[0][price]"], PRICE);
    assert_eq!(session["line_items[0][quantity]"], "1");
    assert_eq!(session["customer"], "cus_standin1");
    assert_eq!(session["client_reference_id"], alice.id);
    assert!(session["success_url"].starts_with(&app.address));
    assert_eq!(url, sessions[0].answer["url"].as_str().unwrap());
    assert_eq!(url, format!("{}/checkout/cs_test_standin2", standin.base));

    // A second checkout reuses the customer.
    let again = app
        .api(
            Method::POST,
            "/api/billing/checkout",
            &alice.token,
            Some(json!({ "plan_id": pro })),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(standin.calls_to("/v1/customers").len(), 1);
    assert_eq!(
        standin.calls_to("/v1/checkout/sessions")[1].form["customer"],
        "cus_standin1"
    );

    // Badly signed, unsigned or stale: 400, and Alice stays on the free plan.
    let body = completed("evt_completed", &alice, &pro, "cus_standin1");
    let now = Utc::now().timestamp();
    for signature in [
        None,
        Some(stripe_standin::signature("whsec_someone_else", now, &body)),
        Some(stripe_standin::signature(WEBHOOK_SECRET, now - 3600, &body)),
        Some(format!("t={now},v1=00ff")),
        Some("garbage".to_owned()),
    ] {
        let (status, answer) = app.stripe_event(&body, signature.clone()).await;
        assert_eq!(status, 400, "{signature:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature");
    }
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "free");

    // Correctly signed (with a second, unrelated v1 beside it, as during a secret roll).
    let signed = format!(
        "{},v1={}",
        stripe_standin::signature(WEBHOOK_SECRET, now, &body),
        "ab".repeat(32)
    );
    let (status, answer) = app.stripe_event(&body, Some(signed)).await;
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (200, json!(false)),
        "{answer}"
    );
    let usage = app.plan_of(&alice).await;
    assert_eq!(usage["plan"]["name"], "pro");
    assert_eq!(usage["messages_today"]["limit"], 10000);
    assert_eq!(usage["subscription_status"], "active");
    assert_eq!(
        app.plan_of(&bob).await["plan"]["name"],
        "free",
        "only Alice moved"
    );

    // Already subscribed: the portal, not a second checkout.
    let third = app
        .api(
            Method::POST,
            "/api/billing/checkout",
            &alice.token,
            Some(json!({ "plan_id": pro })),
        )
        .await;
    assert_eq!(third.status(), 409);
    assert_eq!(error_code(third).await, "already_subscribed");
    let portal = app
        .api(Method::POST, "/api/billing/portal", &alice.token, None)
        .await;
    assert_eq!(portal.status(), 200);
    let portal_url = portal.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let portals = standin.calls_to("/v1/billing_portal/sessions");
    assert_eq!(portals.len(), 1);
    assert_eq!(portals[0].form["customer"], "cus_standin1");
    assert_eq!(portal_url, format!("{}/portal/bps_standin4", standin.base));
    assert!(standin.calls().iter().all(|call| call.method == "POST"));
    let bobs_portal = app
        .api(Method::POST, "/api/billing/portal", &bob.token, None)
        .await;
    assert_eq!(bobs_portal.status(), 409);
    assert_eq!(error_code(bobs_portal).await, "no_subscription");

    // The subscription ends: back on the free plan.
    let later = Utc::now().timestamp() + 1;
    let deleted = subscription_event(
        "evt_deleted",
        "customer.subscription.deleted",
        later,
        "cus_standin1",
        "canceled",
    );
    let (status, _) = app.signed_event(&deleted).await;
    assert_eq!(status, 200);
    let usage = app.plan_of(&alice).await;
    assert_eq!(usage["plan"]["name"], "free");
    assert_eq!(usage["subscription_status"], "canceled");

    // Replaying the completion (same event id) changes nothing: still free.
    let (status, answer) = app.signed_event(&body).await;
    assert_eq!((status, answer["duplicate"].clone()), (200, json!(true)));
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "free");

    // A subscription made active again moves her back; an older update arriving late does
    // not undo the newer state.
    let reactivated = subscription_event(
        "evt_updated",
        "customer.subscription.updated",
        later + 10,
        "cus_standin1",
        "active",
    );
    assert_eq!(app.signed_event(&reactivated).await.0, 200);
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "pro");
    let stale = subscription_event(
        "evt_stale",
        "customer.subscription.updated",
        later + 5,
        "cus_standin1",
        "canceled",
    );
    assert_eq!(app.signed_event(&stale).await.0, 200);
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "pro");

    // Not an event at all, correctly signed: 400.
    let (status, _) = app.signed_event("{\"hello\": 1}").await;
    assert_eq!(status, 400);
    let (status, _) = app.signed_event("not json").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_failed_payment_keeps_the_plan_through_the_grace_period() {
    let standin = StripeStandIn::start().await;
    let app = billing_app(&standin, 24 * 3600).await;
    let pro = app.pro_plan().await;
    let alice = app.new_account().await;
    let checkout = app
        .api(
            Method::POST,
            "/api/billing/checkout",
            &alice.token,
            Some(json!({ "plan_id": pro })),
        )
        .await;
    assert_eq!(checkout.status(), 200);
    let (status, _) = app
        .signed_event(&completed("evt_c", &alice, &pro, "cus_standin1"))
        .await;
    assert_eq!(status, 200);

    let failed_at = Utc::now();
    let (status, _) = app
        .signed_event(&invoice_event(
            "evt_failed",
            "invoice.payment_failed",
            "cus_standin1",
        ))
        .await;
    assert_eq!(status, 200);
    let usage = app.plan_of(&alice).await;
    assert_eq!(
        usage["plan"]["name"], "pro",
        "still within the grace period"
    );
    let downgrade_at =
        chrono::DateTime::parse_from_rfc3339(usage["downgrade_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
    let grace = downgrade_at - failed_at;
    assert!(
        (grace.num_seconds() - 24 * 3600).abs() < 60,
        "downgrade {grace} after the failure"
    );
    // A second failure does not push the downgrade further out.
    app.signed_event(&invoice_event(
        "evt_failed2",
        "invoice.payment_failed",
        "cus_standin1",
    ))
    .await;
    assert_eq!(
        app.plan_of(&alice).await["downgrade_at"],
        usage["downgrade_at"]
    );

    // Paid after all: no downgrade pending.
    let (status, _) = app
        .signed_event(&invoice_event("evt_paid", "invoice.paid", "cus_standin1"))
        .await;
    assert_eq!(status, 200);
    let usage = app.plan_of(&alice).await;
    assert_eq!(usage["plan"]["name"], "pro");
    assert_eq!(usage["downgrade_at"], Value::Null);
}

#[tokio::test]
async fn a_failed_payment_downgrades_once_the_grace_period_is_over() {
    let standin = StripeStandIn::start().await;
    // A grace period of zero: over as soon as the payment failed, no waiting.
    let app = billing_app(&standin, 0).await;
    let pro = app.pro_plan().await;
    let alice = app.new_account().await;
    app.api(
        Method::POST,
        "/api/billing/checkout",
        &alice.token,
        Some(json!({ "plan_id": pro })),
    )
    .await;
    app.signed_event(&completed("evt_c", &alice, &pro, "cus_standin1"))
        .await;
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "pro");
    let (status, _) = app
        .signed_event(&invoice_event(
            "evt_failed",
            "invoice.payment_failed",
            "cus_standin1",
        ))
        .await;
    assert_eq!(status, 200);
    let usage = app.plan_of(&alice).await;
    assert_eq!(usage["plan"]["name"], "free");
    assert_eq!(
        usage["messages_today"]["limit"], 100,
        "the free plan's quota holds"
    );
    // A later successful payment restores the paid plan.
    app.signed_event(&invoice_event("evt_paid", "invoice.paid", "cus_standin1"))
        .await;
    assert_eq!(app.plan_of(&alice).await["plan"]["name"], "pro");
}

#[tokio::test]
async fn without_billing_configured_its_routes_say_so() {
    let app = spawn_app().await;
    let alice = app.new_account().await;
    let plans: Value = app
        .api(Method::GET, "/api/plans", &alice.token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(plans["billing_enabled"], false);
    let free = plans["plans"][0]["id"].as_str().unwrap();
    let checkout = app
        .api(
            Method::POST,
            "/api/billing/checkout",
            &alice.token,
            Some(json!({ "plan_id": free })),
        )
        .await;
    assert_eq!(checkout.status(), 404);
    assert_eq!(error_code(checkout).await, "billing_disabled");
    let (status, answer) = app.stripe_event("{}", Some("t=1,v1=00".into())).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("billing_disabled"))
    );

    // With billing on, a plan without a Stripe price cannot be bought, and a bad id is 400.
    let standin = StripeStandIn::start().await;
    let app = billing_app(&standin, 0).await;
    let alice = app.new_account().await;
    let plans: Value = app
        .api(Method::GET, "/api/plans", &alice.token, None)
        .await
        .json()
        .await
        .unwrap();
    let free = plans["plans"][0]["id"].as_str().unwrap();
    for (body, field) in [
        (json!({ "plan_id": free }), Some("plan_id")),
        (json!({ "plan_id": "x" }), None),
        (json!({}), None),
    ] {
        let response = app
            .api(
                Method::POST,
                "/api/billing/checkout",
                &alice.token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["field"].as_str(), field, "{body}: {answer}");
    }
    assert!(standin.calls().is_empty(), "nothing reached Stripe");
}
