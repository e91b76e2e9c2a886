//! Admin analytics benchmark: seeds a fresh database with 1,000,000 messages (100 accounts,
//! the last 30 days, a realistic status mix) and times `GET /api/admin/analytics` through a
//! real node, for the default 30-day range (every seeded row) and for the last 7 days.
//!
//! `cargo run --release --example analytics-bench -- [--messages N] [--runs N]`
//! Uses the test database server (`BOTWAVE_TEST_DATABASE_URL`, or a throwaway local cluster).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use botwave::{
    auth::jwt::TokenKeys, config::Settings, domain::Email, domain::Role, startup::Application,
};
use chrono::Utc;

const SECRET: &str = "analytics-bench-secret-analytics-bench-secret";
const USERS: i64 = 100;

fn arg(name: &str, default: i64) -> i64 {
    let raw: Vec<String> = std::env::args().collect();
    raw.windows(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let messages = arg("--messages", 1_000_000);
    let runs = arg("--runs", 20).max(1) as usize;
    let db = common::TestDatabase::create().await;
    let pool = db.pool.clone();

    let started = Instant::now();
    let admin = seed(&db.pool, messages).await;
    println!(
        "seeded {messages} messages, {USERS} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: std::env::temp_dir().join(format!("botwave-bench-{}", uuid::Uuid::new_v4())),
        ..Settings::default()
    };
    settings.database.url = Some(db.url.clone());
    settings.auth.jwt_secret = Some(SECRET.into());
    let node = Application::build(&settings).await.expect("node starts");
    let address = format!("http://{}", node.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.run_until(async {
        let _ = stopped.await;
    }));
    let token = TokenKeys::new(SECRET, Duration::from_secs(3600))
        .issue(admin, Role::Admin, 0)
        .expect("a token")
        .token;
    let client = reqwest::Client::new();

    let today = Utc::now().date_naive();
    let week_ago = today - chrono::Duration::days(6);
    for (label, path) in [
        ("30 days (default)", "/api/admin/analytics".to_owned()),
        (
            "7 days",
            format!("/api/admin/analytics?from={week_ago}&until={today}"),
        ),
        ("30 days, CSV", "/api/admin/analytics.csv".to_owned()),
    ] {
        let mut times = Vec::with_capacity(runs);
        for run in 0..runs + 2 {
            let start = Instant::now();
            let response = client
                .get(format!("{address}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("the node answers");
            assert_eq!(response.status(), 200);
            let body = response.bytes().await.expect("a body");
            // The first two runs warm caches and are not counted.
            if run >= 2 {
                times.push(start.elapsed());
            }
            if run == 0 && !path.contains("csv") {
                let report: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                println!(
                    "{label}: {} messages in range, delivery rate {:.3}, median delivery {:.0} ms",
                    report["totals"]["messages"],
                    report["totals"]["delivery_rate"]
                        .as_f64()
                        .unwrap_or_default(),
                    report["totals"]["median_delivery_ms"]
                        .as_f64()
                        .unwrap_or_default()
                );
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label:<18} min {:>7.1} ms  median {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  ({runs} runs)",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            ms(times[times.len() - 1]),
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    drop(pool);
}

/// Accounts, sessions with a connection history, and `messages` messages; returns the admin.
async fn seed(pool: &botwave::db::DbPool, messages: i64) -> uuid::Uuid {
    let email = Email::parse("bench-admin@example.com").expect("an email");
    let admin = botwave::users::create(pool, &email, "not-a-hash", Role::Admin)
        .await
        .expect("admin")
        .id;
    let conn = pool.get().await.expect("a connection");
    conn.batch_execute(&format!(
        "INSERT INTO users (id, email, password_hash)
         SELECT gen_random_uuid(), 'user-' || n || '@bench.example', 'not-a-hash'
         FROM generate_series(1, {USERS}) n;
         INSERT INTO wa_sessions (id, user_id, state, phone, connected_since)
         SELECT gen_random_uuid(), id, 'connected', '1555' || lpad((row_number() OVER ())::text, 7, '0'),
                now() - interval '20 days'
         FROM users WHERE role = 'user';
         UPDATE session_events SET at = now() - interval '20 days';"
    ))
    .await
    .expect("accounts and sessions");
    // Realistic mix: 60 % read, 25 % delivered, 10 % sent, 3 % failed, 2 % still queued;
    // a quarter through the API; delivery 0.2–5 s after sending.
    conn.execute(
        "WITH accounts AS (SELECT array_agg(id) AS ids FROM users WHERE role = 'user'),
         raw AS (
             SELECT n, random() AS r, random() AS s,
                    now() - random() * interval '30 days' AS created_at
             FROM generate_series(1, $1::bigint) n
         )
         INSERT INTO messages (id, user_id, recipient, body, source, status, created_at,
                               sent_at, delivered_at, read_at, failed_at)
         SELECT gen_random_uuid(),
                a.ids[1 + (n % cardinality(a.ids))],
                '1555999' || lpad((n % 10000)::text, 4, '0'),
                'benchmark message',
                CASE WHEN s < 0.25 THEN 'api' ELSE 'web' END,
                CASE WHEN r < 0.60 THEN 'read' WHEN r < 0.85 THEN 'delivered'
                     WHEN r < 0.95 THEN 'sent' WHEN r < 0.98 THEN 'failed' ELSE 'queued' END,
                created_at,
                CASE WHEN r < 0.95 THEN created_at + interval '1 second' END,
                CASE WHEN r < 0.85
                     THEN created_at + interval '1 second' + (0.2 + s * 4.8) * interval '1 second'
                END,
                CASE WHEN r < 0.60 THEN created_at + interval '1 minute' END,
                CASE WHEN r >= 0.95 AND r < 0.98 THEN created_at + interval '2 seconds' END
         FROM raw, accounts a",
        &[&messages],
    )
    .await
    .expect("messages");
    // One statement per call: several in one string run as a transaction, where VACUUM may not.
    for table in ["messages", "message_stats_daily", "session_events"] {
        conn.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum");
    }
    admin
}
