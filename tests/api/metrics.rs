//! `/metrics`: behind its token, and the counts match what a user just did.

use reqwest::Method;

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with};
use crate::webhook_receiver::Receiver;
use crate::webhooks::create_endpoint;
use crate::whatsapp_helpers::PATIENCE;

const TOKEN: &str = "metrics-token-for-the-test-0123";
const OWN_PHONE: &str = "15550007001";
const FRIEND: &str = "15550007002";

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let request = app.request(Method::GET, "/metrics");
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

/// The value of the sample `name{labels}` (labels as printed, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

#[tokio::test]
async fn after_linking_and_sending_the_metrics_show_the_matching_counts() {
    let app = spawn_app_with(|settings| {
        settings.metrics.token = Some(TOKEN.into());
        settings.webhooks.allow_private_targets = true;
        settings.webhooks.poll_interval_ms = 100;
    })
    .await;
    app.create_phone(FRIEND).await;
    let account = app.new_account().await;
    let receiver = Receiver::start().await;
    create_endpoint(&app, &account.token, &receiver.url, &["message.status"]).await;
    app.link(&account, OWN_PHONE).await;
    let sent = app.send_web(&account.token, FRIEND, "counted").await;
    assert_eq!(sent.status(), 202);
    let id = sent.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_message_status(&account.token, &id, "read")
        .await;
    receiver
        .wait_for("queued, sent, delivered and read", PATIENCE, |received| {
            received.len() >= 4
        })
        .await;

    let answer = scrape(&app, Some(TOKEN)).await;
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = answer.text().await.unwrap();
    let value = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    };
    assert_eq!(value("botwave_session_connects_total"), 1.0);
    assert_eq!(value("botwave_session_qr_codes_total"), 1.0);
    assert_eq!(value("botwave_sessions{state=\"connected\"}"), 1.0);
    assert_eq!(
        value(
            "botwave_http_requests_total{route=\"/api/messages/send\",method=\"POST\",status=\"202\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            "botwave_http_requests_total{route=\"/api/auth/register\",method=\"POST\",status=\"201\"}"
        ),
        1.0
    );
    assert_eq!(
        value("botwave_message_status_changes_total{status=\"sent\"}"),
        1.0
    );
    assert_eq!(
        value("botwave_message_status_changes_total{status=\"read\"}"),
        1.0
    );
    assert_eq!(
        value("botwave_messages{status=\"read\",source=\"web\"}"),
        1.0
    );
    assert_eq!(value("botwave_outbox_depth"), 0.0);
    // The one message was timed once per stage, and its time is in the sums.
    for stage in ["accepted_to_sent", "sent_to_delivered"] {
        let series = format!("botwave_message_send_latency_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(value(&series), 1.0, "{series}");
        let every =
            format!("botwave_message_send_latency_seconds_bucket{{le=\"+Inf\",stage=\"{stage}\"}}");
        assert_eq!(value(&every), 1.0, "{every}");
        let sum = format!("botwave_message_send_latency_seconds_sum{{stage=\"{stage}\"}}");
        assert!(value(&sum) > 0.0 && value(&sum) < 60.0, "{sum}");
    }
    // Its four status events reached the receiver, each at the first attempt.
    assert_eq!(
        value("botwave_webhook_attempts_total{outcome=\"delivered\"}"),
        4.0
    );
    assert_eq!(value("botwave_webhook_delivery_lag_seconds_count"), 4.0);
    assert!(sample(&text, "botwave_webhook_attempts_total{outcome=\"retry\"}").is_none());
    assert!(
        value("botwave_http_request_duration_seconds_count{route=\"/api/messages/send\"}") >= 1.0
    );
    assert!(value("botwave_db_pool_connections") >= 1.0);
    // A message id in a path is a placeholder, not a label value of its own.
    assert!(!text.contains(&id), "a message id leaked into a label");

    // The shipped Grafana dashboard only charts series the node serves.
    let dashboard = include_str!("../../config/grafana-botwave.json");
    let charted: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("botwave_"))
        .collect();
    assert!(charted.len() >= 8, "{charted:?}");
    for series in charted {
        assert!(
            text.lines().any(|line| line.starts_with(series)),
            "the dashboard charts {series}, which /metrics does not serve"
        );
    }
}

#[tokio::test]
async fn metrics_need_the_token_and_are_off_without_one() {
    let app = spawn_app_with(|settings| settings.metrics.token = Some(TOKEN.into())).await;
    for presented in [None, Some("wrong-token-wrong-token"), Some("")] {
        let refused = scrape(&app, presented).await;
        assert_eq!(refused.status(), 401, "token {presented:?}");
        assert_eq!(error_code(refused).await, "invalid_metrics_token");
    }
    let account = app.new_account().await;
    let user_token = scrape(&app, Some(&account.token)).await;
    assert_eq!(
        user_token.status(),
        401,
        "a login token is not the metrics token"
    );

    let off = spawn_app().await;
    let answer = scrape(&off, Some(TOKEN)).await;
    assert_eq!(answer.status(), 404);
}

#[tokio::test]
async fn made_up_paths_and_methods_do_not_grow_the_metrics() {
    let app = spawn_app_with(|settings| settings.metrics.token = Some(TOKEN.into())).await;
    for n in 0..300 {
        let path = format!("/api/made-up-{n}/x");
        let _ = app.request(Method::GET, &path).send().await.unwrap();
        let verb = Method::from_bytes(format!("VERB{n}").as_bytes()).unwrap();
        let _ = app.request(verb, "/api/auth/me").send().await.unwrap();
    }
    let text = scrape(&app, Some(TOKEN)).await.text().await.unwrap();
    assert!(!text.contains("made-up"), "a made-up path became a label");
    assert!(!text.contains("VERB"), "a made-up method became a label");
    let series = text
        .lines()
        .filter(|line| line.starts_with("botwave_http_requests_total{"))
        .count();
    assert!(
        series < 20,
        "{series} request series after made-up requests:\n{text}"
    );
}

#[test]
fn routes_are_labelled_with_placeholders() {
    use botwave::metrics::route_of;
    assert_eq!(
        route_of("/api/messages/0b0f6f4e-9e55-4a43-9b7e-3f2a3f6f1a11"),
        "/api/messages/{id}"
    );
    assert_eq!(
        route_of("/api/admin/users/42/role"),
        "/api/admin/users/{id}/role"
    );
    assert_eq!(route_of("/assets/app.js"), "/assets/{name}");
    assert_eq!(route_of("/wp-login.php"), "other");
    assert_eq!(route_of("/api/send"), "/api/send");
}
