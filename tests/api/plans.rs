//! Plans and quotas: a send over the plan's quota is refused with 429 `quota_exceeded` and
//! stores nothing, on every send route and under concurrency; the admin raising the quota lets
//! the same request through; `/api/usage` counts per account; limits on API keys and webhook
//! endpoints hold at creation; the plan admin routes are for admins and check their input.

use chrono::{Datelike, Duration as Days, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, error_code, spawn_app_with};

const PHONE_A: &str = "15550007001";
const PHONE_B: &str = "15550007002";
const RECIPIENT: &str = "15550007099";

async fn enforcing_app() -> TestApp {
    spawn_app_with(|settings| {
        settings.plans.enforce = true;
        settings.webhooks.allow_private_targets = true;
    })
    .await
}

impl TestApp {
    async fn usage(&self, token: &str) -> Value {
        let response = self.api(Method::GET, "/api/usage", token, None).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn free_plan_id(&self, admin: &Account) -> String {
        let plans = self.admin_get("/api/admin/plans", &admin.token).await;
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["is_default"] == true)
            .expect("a default plan")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn patch_plan(&self, admin: &Account, id: &str, body: Value) -> Value {
        let (status, answer) = self
            .admin_call(
                Method::PATCH,
                &format!("/api/admin/plans/{id}"),
                &admin.token,
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn message_count(&self, token: &str) -> usize {
        let page: Value = self
            .api(Method::GET, "/api/messages?limit=200", token, None)
            .await
            .json()
            .await
            .unwrap();
        page["messages"].as_array().unwrap().len()
    }
}

fn next_utc_midnight() -> chrono::DateTime<Utc> {
    let today = Utc::now().date_naive();
    Utc.from_utc_datetime(&(today + Days::days(1)).and_hms_opt(0, 0, 0).unwrap())
}

fn next_month_start() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap()
}

fn time(value: &Value) -> chrono::DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn over_quota_a_send_is_refused_and_stored_nowhere_until_the_admin_raises_it() {
    let app = enforcing_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_account().await;
    let bob = app.new_account().await;
    app.link(&alice, PHONE_A).await;
    app.link(&bob, PHONE_B).await;
    let free = app.free_plan_id(&admin).await;
    app.patch_plan(&admin, &free, json!({ "messages_per_day": 2 }))
        .await;

    for n in 0..2 {
        let sent = app
            .send_web(&alice.token, RECIPIENT, &format!("within quota {n}"))
            .await;
        assert_eq!(sent.status(), 202);
    }
    let send_with_key = |key: &'static str| {
        app.request(Method::POST, "/api/messages/send")
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "to": RECIPIENT, "text": "one too many" }))
    };
    let refused = send_with_key("order-3").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(time(&body["error"]["resets_at"]), next_utc_midnight());
    let until_midnight = (next_utc_midnight() - Utc::now()).num_seconds();
    assert!(
        (until_midnight - 5..=until_midnight + 5).contains(&retry_after),
        "Retry-After {retry_after}, {until_midnight} s to midnight"
    );
    assert_eq!(app.message_count(&alice.token).await, 2, "nothing stored");

    // The API-key routes are held to the same quota.
    let key = app.create_api_key(&alice).await;
    let by_key = app.send_with_key(&key, RECIPIENT, "by key").await;
    assert_eq!(by_key.status(), 429);
    assert_eq!(error_code(by_key).await, "quota_exceeded");
    let by_url = app
        .request(Method::GET, "/api/send")
        .query(&[
            ("api_key", key.as_str()),
            ("to", RECIPIENT),
            ("text", "by url"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(by_url.status(), 429);
    assert_eq!(app.message_count(&alice.token).await, 2);

    let usage = app.usage(&alice.token).await;
    assert_eq!(usage["plan"]["name"], "free");
    assert_eq!(usage["messages_today"]["used"], 2);
    assert_eq!(usage["messages_today"]["limit"], 2);
    assert_eq!(
        time(&usage["messages_today"]["resets_at"]),
        next_utc_midnight()
    );
    assert_eq!(usage["messages_this_month"]["used"], 2);
    assert_eq!(usage["messages_this_month"]["limit"], 1000);
    assert_eq!(
        time(&usage["messages_this_month"]["resets_at"]),
        next_month_start()
    );
    assert_eq!(usage["api_keys"]["used"], 1);
    assert_eq!(usage["enforced"], true);
    // The same answer with the API key.
    let by_api_key: Value = app
        .request(Method::GET, "/api/usage")
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_api_key["messages_today"]["used"], 2);

    // Bob, on the same plan, is not affected by Alice's use.
    assert_eq!(app.usage(&bob.token).await["messages_today"]["used"], 0);
    let bobs = app.send_web(&bob.token, RECIPIENT, "bob's first").await;
    assert_eq!(bobs.status(), 202);
    assert_eq!(app.usage(&bob.token).await["messages_today"]["used"], 1);
    assert_eq!(app.usage(&alice.token).await["messages_today"]["used"], 2);

    // The admin raises the quota: the same request (same idempotency key) now passes, once.
    app.patch_plan(&admin, &free, json!({ "messages_per_day": 3 }))
        .await;
    let passed = send_with_key("order-3").send().await.unwrap();
    assert_eq!(passed.status(), 202);
    assert_eq!(passed.headers()["idempotent-replayed"], "false");
    let replayed = send_with_key("order-3").send().await.unwrap();
    assert_eq!(replayed.status(), 202, "a replay is not a new message");
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(app.message_count(&alice.token).await, 3);
    assert_eq!(app.usage(&alice.token).await["messages_today"]["used"], 3);

    // The admin's user list shows each account's plan and use.
    let users = app.admin_get("/api/admin/users", &admin.token).await;
    let row = |id: &str| {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&alice.id)["plan"]["name"], "free");
    assert_eq!(row(&alice.id)["plan"]["messages_today"], 3);
    assert_eq!(row(&alice.id)["plan"]["messages_per_day"], 3);
    assert_eq!(row(&bob.id)["plan"]["messages_today"], 1);
    // And per plan, what its accounts sent.
    let plans = app.admin_get("/api/admin/plans", &admin.token).await;
    assert_eq!(plans["plans"][0]["name"], "free");
    assert_eq!(plans["plans"][0]["members"], 3);
    assert_eq!(plans["plans"][0]["messages_today"], 4);
    assert_eq!(plans["plans"][0]["messages_this_month"], 4);
}

#[tokio::test]
async fn concurrent_sends_on_two_nodes_never_pass_the_quota() {
    let app = enforcing_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_account().await;
    app.link(&alice, PHONE_A).await;
    // A plan of its own for Alice: the admin moves her onto it.
    let (status, created) = app
        .admin_call(
            Method::POST,
            "/api/admin/plans",
            &admin.token,
            Some(json!({ "name": "five a month", "messages_per_month": 5 })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let plan_id = created["plan"]["id"].as_str().unwrap().to_owned();
    let (status, moved) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{}/plan", alice.id),
            &admin.token,
            Some(json!({ "plan_id": plan_id })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["plan"]["name"], "five a month");

    // Half the sends reach a second node on the same database (with an API key: the nodes
    // here have login-token secrets of their own): the quota is one for both.
    let peer = app.spawn_peer("node-b").await;
    let key = app.create_api_key(&alice).await;
    let sends = (0..20).map(|n| {
        let node = if n % 2 == 0 {
            &app.address
        } else {
            &peer.address
        };
        let request = app
            .client
            .post(format!("{node}/api/send"))
            .header("X-Api-Key", &key)
            .json(&json!({ "to": RECIPIENT, "text": format!("burst {n}") }));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(sends).await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, refused), (5, 15), "{statuses:?}");
    assert_eq!(app.message_count(&alice.token).await, 5);
    let usage = app.usage(&alice.token).await;
    assert_eq!(usage["plan"]["name"], "five a month");
    assert_eq!(usage["messages_this_month"]["used"], 5);
    assert_eq!(usage["messages_today"]["limit"], Value::Null);
    peer.stop().await;

    // Back on the default plan (`plan_id: null`).
    let (status, moved) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{}/plan", alice.id),
            &admin.token,
            Some(json!({ "plan_id": null })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(app.usage(&alice.token).await["plan"]["name"], "free");
}

#[tokio::test]
async fn api_keys_and_webhook_endpoints_are_held_to_the_plan_at_creation() {
    let app = enforcing_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_account().await;
    let free = app.free_plan_id(&admin).await;
    app.patch_plan(
        &admin,
        &free,
        json!({ "api_keys": 1, "webhook_endpoints": 1 }),
    )
    .await;

    let key = app.create_api_key(&alice).await;
    assert!(key.starts_with("bw_"));
    let second = app
        .api(
            Method::POST,
            "/api/keys",
            &alice.token,
            Some(json!({ "name": "second" })),
        )
        .await;
    assert_eq!(second.status(), 403);
    assert_eq!(error_code(second).await, "plan_limit_reached");

    let hook = |url: &str| json!({ "url": url, "events": ["message.status"] });
    let first = app
        .api(
            Method::POST,
            "/api/webhooks",
            &alice.token,
            Some(hook("http://127.0.0.1:9/one")),
        )
        .await;
    assert_eq!(first.status(), 201);
    let over = app
        .api(
            Method::POST,
            "/api/webhooks",
            &alice.token,
            Some(hook("http://127.0.0.1:9/two")),
        )
        .await;
    assert_eq!(over.status(), 403);
    assert_eq!(error_code(over).await, "plan_limit_reached");
    let usage = app.usage(&alice.token).await;
    assert_eq!(usage["api_keys"], json!({ "used": 1, "limit": 1 }));
    assert_eq!(usage["webhook_endpoints"], json!({ "used": 1, "limit": 1 }));

    // No limit (`null`): room again.
    app.patch_plan(&admin, &free, json!({ "api_keys": null }))
        .await;
    let again = app
        .api(
            Method::POST,
            "/api/keys",
            &alice.token,
            Some(json!({ "name": "second" })),
        )
        .await;
    assert_eq!(again.status(), 201);
}

#[tokio::test]
async fn plan_admin_routes_are_for_admins_and_refuse_bad_input() {
    let app = enforcing_app().await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    let free = app.free_plan_id(&admin).await;

    for (method, path, body) in [
        (Method::GET, "/api/admin/plans".to_owned(), None),
        (
            Method::POST,
            "/api/admin/plans".to_owned(),
            Some(json!({ "name": "mine" })),
        ),
        (
            Method::PATCH,
            format!("/api/admin/plans/{free}"),
            Some(json!({ "messages_per_day": null })),
        ),
        (
            Method::PUT,
            format!("/api/admin/users/{}/plan", user.id),
            Some(json!({ "plan_id": null })),
        ),
    ] {
        let response = app.api(method.clone(), &path, &user.token, body).await;
        assert_eq!(response.status(), 403, "{method} {path}");
        assert_eq!(error_code(response).await, "forbidden");
    }

    let create = |body: Value| async {
        app.admin_call(Method::POST, "/api/admin/plans", &admin.token, Some(body))
            .await
    };
    for (body, field) in [
        (json!({ "name": "  " }), "name"),
        (
            json!({ "name": "x", "messages_per_day": -1 }),
            "messages_per_day",
        ),
        (
            json!({ "name": "x", "price_currency": "dollars" }),
            "price_currency",
        ),
        (json!({ "name": "x", "price_amount": -5 }), "price_amount"),
        (
            json!({ "name": "x", "stripe_price_id": "price 1; drop" }),
            "stripe_price_id",
        ),
        (json!({ "messages_per_day": 5 }), "name"),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = create(json!({ "name": "x", "messages_per_day": "many" })).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, answer) = create(json!({ "name": "x", "colour": "red" })).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, answer) = create(json!({ "name": "free" })).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("plan_name_taken"))
    );

    let (status, pro) = create(json!({
        "name": "pro", "messages_per_day": 5000, "messages_per_month": 100000,
        "price_amount": 1900, "price_currency": "EUR", "stripe_price_id": "price_pro"
    }))
    .await;
    assert_eq!(status, 201, "{pro}");
    assert_eq!(
        pro["plan"]["price"],
        json!({ "amount": 1900, "currency": "eur" })
    );
    assert_eq!(pro["plan"]["api_keys"], Value::Null);
    let pro_id = pro["plan"]["id"].as_str().unwrap();
    let (status, answer) = create(json!({ "name": "pro 2", "stripe_price_id": "price_pro" })).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("stripe_price_taken"))
    );

    // Exactly one default: moving it takes it from the free plan; it cannot be just dropped.
    let (status, answer) = app
        .admin_call(
            Method::PATCH,
            &format!("/api/admin/plans/{free}"),
            &admin.token,
            Some(json!({ "is_default": false })),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("default_plan_needed"))
    );
    app.patch_plan(&admin, pro_id, json!({ "is_default": true }))
        .await;
    assert_eq!(app.usage(&user.token).await["plan"]["name"], "pro");
    let listed = app.admin_get("/api/admin/plans", &admin.token).await;
    let plans = listed["plans"].as_array().unwrap();
    assert_eq!(plans.iter().filter(|p| p["is_default"] == true).count(), 1);
    assert_eq!(plans[0]["name"], "pro");
    assert_eq!(plans[0]["members"], 2);

    let unknown = uuid::Uuid::new_v4();
    let (status, _) = app
        .admin_call(
            Method::PATCH,
            &format!("/api/admin/plans/{unknown}"),
            &admin.token,
            Some(json!({ "name": "nobody" })),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{}/plan", user.id),
            &admin.token,
            Some(json!({ "plan_id": unknown })),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{unknown}/plan"),
            &admin.token,
            Some(json!({ "plan_id": null })),
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = app
        .admin_call(
            Method::PUT,
            &format!("/api/admin/users/{}/plan", user.id),
            &admin.token,
            Some(json!({ "plan_id": "not-a-uuid" })),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    // Every change is in the audit log.
    let audit = app.admin_get("/api/admin/audit", &admin.token).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"plan.create"), "{actions:?}");
    assert!(actions.contains(&"plan.update"), "{actions:?}");
}
