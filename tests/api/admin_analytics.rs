//! Admin analytics checked against messages actually sent through the simulator: counts by
//! status, source and day, delivery rate, delivery time, active sessions, CSV export.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const OWN_PHONE: &str = "15550002222";
const FRIEND: &str = "15559990002";
/// Nobody uses WhatsApp on this number: sends to it fail.
const STRANGER: &str = "15557770000";

#[tokio::test]
async fn analytics_count_exactly_what_was_sent_by_status_source_and_day() {
    let app = spawn_app().await;
    app.create_phone(FRIEND).await;
    let admin = app.new_admin().await;
    let user = app.new_account().await;
    app.link(&user, OWN_PHONE).await;
    let key = app.create_api_key(&user).await;
    let id = |body: Value| body["id"].as_str().unwrap().to_owned();
    let web = |text: &'static str, to: &'static str| {
        let app = &app;
        let token = user.token.clone();
        async move {
            let response = app.send_web(&token, to, text).await;
            assert_eq!(response.status(), 202);
            id(response.json().await.unwrap())
        }
    };
    let api = |text: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let response = app.send_with_key(&key, FRIEND, text).await;
            assert_eq!(response.status(), 202);
            id(response.json().await.unwrap())
        }
    };

    // 2 web messages the phone receives but never reads: delivered.
    app.set_receipts(json!({ "mode": "auto", "delivered_ms": 20, "read_ms": null }))
        .await;
    for text in ["delivered 1", "delivered 2"] {
        let message = web(text, FRIEND).await;
        app.wait_for_message_status(&user.token, &message, "delivered")
            .await;
    }
    // 1 web + 1 API message read.
    app.set_receipts(json!({ "mode": "auto", "delivered_ms": 20, "read_ms": 60 }))
        .await;
    for message in [web("read web", FRIEND).await, api("read api").await] {
        app.wait_for_message_status(&user.token, &message, "read")
            .await;
    }
    // 1 API message without any receipt: sent.
    app.set_receipts(json!({ "mode": "manual" })).await;
    let unacknowledged = api("no receipt").await;
    app.wait_for_message_status(&user.token, &unacknowledged, "sent")
        .await;
    // 1 web message to a number not on WhatsApp: failed.
    let failed = web("nobody there", STRANGER).await;
    app.wait_for_message_status(&user.token, &failed, "failed")
        .await;
    // And one from yesterday, written straight into the log.
    let today = Utc::now().date_naive();
    let yesterday = today - Duration::days(1);
    let conn = app.db.pool.get().await.unwrap();
    conn.execute(
        "INSERT INTO messages (id, user_id, recipient, body, source, status, created_at, sent_at,
                               delivered_at)
         VALUES ($1, $2, $3, 'old', 'api', 'delivered', now() - interval '1 day',
                 now() - interval '1 day', now() - interval '1 day' + interval '2 seconds')",
        &[
            &uuid::Uuid::new_v4(),
            &user.id.parse::<uuid::Uuid>().unwrap(),
            &FRIEND,
        ],
    )
    .await
    .unwrap();
    // The hourly counters count messages by the hour they were created in, and rely on it
    // never changing: moving a message to another day is refused, and counts stay as below.
    let moved = conn
        .execute(
            "UPDATE messages SET created_at = created_at - interval '2 days' WHERE user_id = $1",
            &[&user.id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .expect_err("a message's created_at was changed");
    let refusal = moved.as_db_error().map(|e| e.message().to_owned());
    assert!(
        refusal.is_some_and(|message| message.contains("created_at cannot change")),
        "{moved:?}"
    );

    let report = app
        .admin_get(
            &format!("/api/admin/analytics?from={today}&until={today}"),
            &admin.token,
        )
        .await;
    let status_counts = json!({
        "queued": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 2, "failed": 1
    });
    let totals = &report["totals"];
    assert_eq!(totals["messages"], 6, "{report}");
    assert_eq!(totals["by_status"], status_counts);
    assert_eq!(totals["by_source"], json!({ "web": 4, "api": 2 }));
    // (delivered 2 + read 2) / (sent 1 + delivered 2 + read 2 + failed 1)
    let rate = totals["delivery_rate"].as_f64().unwrap();
    assert!((rate - 4.0 / 6.0).abs() < 1e-9, "{rate}");
    let median = totals["median_delivery_ms"].as_f64().unwrap();
    assert!((0.0..30_000.0).contains(&median), "{median}");

    let days = report["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["day"], today.to_string());
    assert_eq!(days[0]["messages"], 6);
    assert_eq!(days[0]["by_status"], status_counts);
    assert_eq!(days[0]["active_sessions"], 1);
    let hours = report["per_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(
        hours
            .iter()
            .map(|h| h["messages"].as_i64().unwrap())
            .sum::<i64>(),
        6
    );

    let users = report["per_user"].as_array().unwrap();
    assert_eq!(users.len(), 1, "only the sender: {report}");
    assert_eq!(users[0]["email"], user.email.as_str());
    assert_eq!(users[0]["messages"], 6);
    assert_eq!(users[0]["by_source"], json!({ "web": 4, "api": 2 }));
    assert_eq!(report["top_senders"][0]["user_id"], user.id.as_str());

    // Two days: yesterday's message lands on yesterday.
    let two_days = app
        .admin_get(
            &format!("/api/admin/analytics?from={yesterday}&until={today}"),
            &admin.token,
        )
        .await;
    assert_eq!(two_days["totals"]["messages"], 7);
    let per_day = two_days["per_day"].as_array().unwrap();
    assert_eq!(per_day[0]["day"], yesterday.to_string());
    assert_eq!(per_day[0]["messages"], 1);
    assert_eq!(per_day[0]["by_source"], json!({ "web": 0, "api": 1 }));
    assert_eq!(per_day[0]["delivery_rate"], 1.0);
    assert_eq!(per_day[1]["messages"], 6);

    // The default range is the last 30 days, today included.
    let default = app.admin_get("/api/admin/analytics", &admin.token).await;
    assert_eq!(default["until"], today.to_string());
    assert_eq!(default["per_day"].as_array().unwrap().len(), 30);
    assert_eq!(default["totals"]["messages"], 7);

    // CSV: the per-day rows, parsable, matching the JSON.
    for path in [
        format!("/api/admin/analytics.csv?from={yesterday}&until={today}"),
        format!("/api/admin/analytics?format=csv&from={yesterday}&until={today}"),
    ] {
        let response = app.api(Method::GET, &path, &admin.token, None).await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = response.text().await.unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 3, "{text}");
        let header = &rows[0];
        assert_eq!(header[0], "day");
        assert!(rows.iter().all(|r| r.len() == header.len()), "{text}");
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let today_row = &rows[2];
        assert_eq!(today_row[column("day")], today.to_string());
        assert_eq!(today_row[column("messages")], "6");
        assert_eq!(today_row[column("delivered")], "2");
        assert_eq!(today_row[column("read")], "2");
        assert_eq!(today_row[column("failed")], "1");
        assert_eq!(today_row[column("web")], "4");
        assert_eq!(today_row[column("api")], "2");
        let csv_rate: f64 = today_row[column("delivery_rate")].parse().unwrap();
        assert!((csv_rate - 4.0 / 6.0).abs() < 1e-3);
    }
}

#[tokio::test]
async fn analytics_ranges_are_validated() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    for (query, field) in [
        ("from=2024-02-10&until=2024-02-01", "from"),
        ("from=2024-13-01", "from"),
        ("until=yesterday", "until"),
        ("from=2020-01-01&until=2024-01-01", "until"),
        ("format=xml", "format"),
    ] {
        let (status, body) = app
            .admin_call(
                Method::GET,
                &format!("/api/admin/analytics?{query}"),
                &admin.token,
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    // An empty installation gives zeros, not errors.
    let empty = app
        .admin_get(
            "/api/admin/analytics?from=2024-02-01&until=2024-02-03",
            &admin.token,
        )
        .await;
    assert_eq!(empty["totals"]["messages"], 0);
    assert_eq!(empty["totals"]["delivery_rate"], Value::Null);
    assert_eq!(empty["per_day"].as_array().unwrap().len(), 3);
    assert_eq!(empty["per_user"], json!([]));
}
