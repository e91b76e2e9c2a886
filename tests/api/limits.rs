//! Request rate limits: a token bucket per account that its API keys share, a lower one per key
//! when its owner sets one, held in the database so every node spends from the same buckets;
//! over them, 429 `rate_limited` with `Retry-After` and `RateLimit-*` headers.

use std::time::{Duration, Instant};

use botwave::config::LimitSettings;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Account, TestApp, error_code, spawn_app_with};

/// Refill slow enough that a burst of requests on a loaded machine does not earn a token back
/// while the test counts.
const SLOW: f64 = 0.2;

async fn limited_app(requests_per_second: f64, burst: u32) -> TestApp {
    spawn_app_with(|settings| {
        settings.limits = LimitSettings {
            requests_per_second,
            burst,
        }
    })
    .await
}

async fn new_key(app: &TestApp, account: &Account, rate_limit: Value) -> Value {
    let response = app
        .request(Method::POST, "/api/keys")
        .bearer_auth(&account.token)
        .json(&json!({ "name": "limited", "rate_limit": rate_limit }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn secret(key: &Value) -> &str {
    key["key"].as_str().unwrap()
}

/// One cheap request with `key` to the node at `address`.
async fn call(app: &TestApp, address: &str, key: &str) -> Response {
    app.client
        .get(format!("{address}/api/messages"))
        .header("X-Api-Key", key)
        .send()
        .await
        .unwrap()
}

fn header(response: &Response, name: &str) -> u64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// Calls round-robin over `(address, key)` until one is refused: how many passed, the refusal,
/// and how long it took (for the tokens that refilled meanwhile).
async fn until_refused(app: &TestApp, callers: &[(&str, &str)]) -> (u64, Response, Duration) {
    let started = Instant::now();
    for attempt in 0..1_000u64 {
        let (address, key) = callers[attempt as usize % callers.len()];
        let response = call(app, address, key).await;
        if response.status() == 429 {
            return (attempt, response, started.elapsed());
        }
        assert_eq!(response.status(), 200);
    }
    panic!("never rate limited");
}

/// `burst` requests pass, plus at most what refilled while they were made.
fn assert_passed_about(passed: u64, burst: u64, rate: f64, took: Duration) {
    let refilled = (rate * took.as_secs_f64()).ceil() as u64;
    assert!(
        passed >= burst && passed <= burst + refilled,
        "{passed} passed, the bucket holds {burst} (+{refilled} refilled)"
    );
}

#[tokio::test]
async fn a_key_over_its_rate_is_refused_with_retry_after_until_it_has_waited() {
    let app = limited_app(0.5, 3).await;
    let account = app.new_account().await;
    let key = new_key(&app, &account, Value::Null).await;

    // Passing answers say how much is left.
    let first = call(&app, &app.address, secret(&key)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit"), 3);
    assert_eq!(header(&first, "ratelimit-remaining"), 2);
    assert!((1..=2).contains(&header(&first, "ratelimit-reset")));

    let (passed, refused, took) = until_refused(&app, &[(&app.address, secret(&key))]).await;
    assert_passed_about(passed + 1, 3, 0.5, took);
    let retry_after = header(&refused, "retry-after");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(header(&refused, "ratelimit-limit"), 3);
    assert_eq!(header(&refused, "ratelimit-remaining"), 0);
    assert!(header(&refused, "ratelimit-reset") >= retry_after);
    assert_eq!(error_code(refused).await, "rate_limited");

    // After the wait it was given, requests pass again (polled: the clock is the database's).
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = call(&app, &app.address, secret(&key)).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(Instant::now() < deadline, "still refused after Retry-After");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_keys_own_lower_rate_applies_and_spends_nothing_of_the_account_when_refused() {
    let app = limited_app(SLOW, 20).await;
    let account = app.new_account().await;
    let strict = new_key(
        &app,
        &account,
        json!({ "requests_per_second": SLOW, "burst": 2 }),
    )
    .await;
    assert_eq!(
        strict["rate_limit"],
        json!({ "requests_per_second": SLOW, "burst": 2 })
    );
    let other = new_key(&app, &account, Value::Null).await;

    let first = call(&app, &app.address, secret(&strict)).await;
    assert_eq!(header(&first, "ratelimit-limit"), 2);
    let (passed, refused, took) = until_refused(&app, &[(&app.address, secret(&strict))]).await;
    assert_passed_about(passed + 1, 2, SLOW, took);
    assert_eq!(header(&refused, "ratelimit-limit"), 2);
    // Hammering the strict key past its own limit…
    for _ in 0..10 {
        assert_eq!(
            call(&app, &app.address, secret(&strict)).await.status(),
            429
        );
    }
    // …left the account's bucket to the other key: 20 minus the strict key's passes.
    let (passed_other, _, took) = until_refused(&app, &[(&app.address, secret(&other))]).await;
    assert_passed_about(passed_other + passed + 1, 20, SLOW, took);

    // The list shows the key's own rate; it can be raised (up to the account's) or removed.
    let keys: Value = app
        .request(Method::GET, "/api/keys")
        .bearer_auth(&account.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == strict["id"])
        .unwrap();
    assert_eq!(listed["rate_limit"]["burst"], 2);
    let path = format!("/api/keys/{}", strict["id"].as_str().unwrap());
    let removed: Value = app
        .request(Method::PATCH, &path)
        .bearer_auth(&account.token)
        .json(&json!({ "rate_limit": null }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(removed["rate_limit"].is_null(), "{removed}");
    assert_eq!(removed["scopes"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn an_accounts_keys_share_its_bucket_and_other_accounts_are_untouched() {
    let app = limited_app(SLOW, 6).await;
    let alice = app.new_account().await;
    let first = new_key(&app, &alice, Value::Null).await;
    let second = new_key(&app, &alice, Value::Null).await;

    let (passed, refused, took) = until_refused(
        &app,
        &[
            (&app.address, secret(&first)),
            (&app.address, secret(&second)),
        ],
    )
    .await;
    assert_passed_about(passed, 6, SLOW, took);
    assert_eq!(error_code(refused).await, "rate_limited");
    // Both of alice's keys are out now.
    for key in [&first, &second] {
        assert_eq!(call(&app, &app.address, secret(key)).await.status(), 429);
    }

    // Bob's bucket is his own: full, whatever alice did.
    let bob = app.new_account().await;
    let bobs = new_key(&app, &bob, Value::Null).await;
    let answer = call(&app, &app.address, secret(&bobs)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(header(&answer, "ratelimit-remaining"), 5);

    // Login tokens (the dashboard) are not counted against the API's rate.
    let by_token = app
        .request(Method::GET, "/api/messages")
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);
    assert!(by_token.headers().get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn two_nodes_on_one_database_spend_from_the_same_bucket() {
    let app = limited_app(SLOW, 8).await;
    let peer = app.spawn_peer("second-node").await;
    let account = app.new_account().await;
    let key = new_key(&app, &account, Value::Null).await;

    // Requests alternate between the nodes: together they get the bucket once, not twice.
    let (passed, refused, took) = until_refused(
        &app,
        &[(&app.address, secret(&key)), (&peer.address, secret(&key))],
    )
    .await;
    assert_passed_about(passed, 8, SLOW, took);
    assert_eq!(error_code(refused).await, "rate_limited");
    for address in [&app.address, &peer.address] {
        let answer = call(&app, address, secret(&key)).await;
        assert_eq!(answer.status(), 429, "{address}");
        assert!(header(&answer, "retry-after") >= 1);
    }

    // Concurrent requests on both nodes cannot overspend it either.
    let other = app.new_account().await;
    let fresh = new_key(&app, &other, Value::Null).await;
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..24).map(|i| {
        let address = if i % 2 == 0 {
            app.address.clone()
        } else {
            peer.address.clone()
        };
        let key = secret(&fresh).to_owned();
        let client = app.client.clone();
        async move {
            client
                .get(format!("{address}/api/messages"))
                .header("X-Api-Key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    }))
    .await;
    let passed = answers.iter().filter(|status| **status == 200).count() as u64;
    assert!(
        answers
            .iter()
            .all(|status| *status == 200 || *status == 429)
    );
    assert_passed_about(passed, 8, SLOW, started.elapsed());
    peer.stop().await;
}

#[tokio::test]
async fn a_key_request_waiting_on_a_password_change_does_not_deadlock_with_it() {
    let app = crate::helpers::spawn_app().await;
    let account = app.new_account().await;
    let key = new_key(&app, &account, Value::Null).await;

    // A password change: the account row first, then its keys, in one transaction.
    let mut conn = app.db.pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute(
        "UPDATE users SET updated_at = now() WHERE id = $1::text::uuid",
        &[&account.id],
    )
    .await
    .unwrap();
    let request = tokio::spawn({
        let client = app.client.clone();
        let url = format!("{}/api/messages", app.address);
        let key = secret(&key).to_owned();
        async move {
            client
                .get(url)
                .header("X-Api-Key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    // The request now waits for the account row; the transaction goes on to the keys.
    let observer = app.db.pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT 1 FROM users%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the request never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.execute(
        "UPDATE api_keys SET name = 'renamed' WHERE user_id = $1::text::uuid",
        &[&account.id],
    )
    .await
    .expect("no deadlock");
    tx.commit().await.unwrap();
    assert_eq!(request.await.unwrap(), 200);
}
