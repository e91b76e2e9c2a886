//! Webhook delivery benchmark: a real node and PostgreSQL, and a local HTTP receiver answering
//! 200, in one process. Events are written at a steady rate through the same database function
//! the triggers call (so the figure is the delivery pipeline's: claim, sign, POST, settle), each
//! about its own subject so ordering does not serialise them. It reports the delivered
//! throughput and the lag from an event's `created_at` to its arrival at the receiver.
//!
//! `cargo bench --bench webhooks --features simulator -- [--rate N] [--seconds N] [--endpoints N]`
//! (defaults 500 events/s, 20 s, 4 endpoints of 4 users).

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use botwave::{
    config::{DatabaseSettings, Settings, WhatsappSettings},
    startup::Application,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

struct Args {
    rate: usize,
    seconds: u64,
    endpoints: usize,
}

fn args() -> Args {
    let mut args = Args {
        rate: 500,
        seconds: 20,
        endpoints: 4,
    };
    let raw: Vec<String> = std::env::args().collect();
    for pair in raw.windows(2) {
        let value = || pair[1].parse().expect("a number");
        match pair[0].as_str() {
            "--rate" => args.rate = value(),
            "--seconds" => args.seconds = value() as u64,
            "--endpoints" => args.endpoints = value(),
            _ => {}
        }
    }
    args
}

/// Arrival lags in ms, one per delivered event.
type Lags = Arc<Mutex<Vec<f64>>>;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

async fn receive(
    lags: Lags,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let arrived = now_ms();
    if let Ok(event) = serde_json::from_slice::<Value>(&body)
        && let Some(created) = event["created_at"].as_str()
        && let Ok(created) = chrono::DateTime::parse_from_rfc3339(created)
    {
        let lag = arrived - created.timestamp_micros() as f64 / 1000.0;
        lags.lock().unwrap().push(lag);
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn start_receiver(lags: Lags) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let lags = lags.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| receive(lags.clone(), request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = args();
    let db = common::TestDatabase::create().await;
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("botwave-bench-{}", uuid::Uuid::new_v4())),
        database: DatabaseSettings {
            url: Some(db.url.clone()),
            pool_size: 32,
        },
        // No session runs: nothing dials WhatsApp.
        whatsapp: WhatsappSettings {
            url: Some("ws://127.0.0.1:9/ws/chat".into()),
            ..WhatsappSettings::default()
        },
        ..Settings::default()
    };
    settings.webhooks.allow_private_targets = true;
    let node = Application::build(&settings).await.expect("node starts");
    let address = format!("http://{}", node.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(node.run_until(async {
        let _ = stopped.await;
    }));
    let lags: Lags = Arc::default();
    let url = start_receiver(lags.clone()).await;
    let http = reqwest::Client::new();
    let mut users = Vec::new();
    for n in 0..args.endpoints {
        let email = format!("bench-{n}@example.com");
        let registered: Value = http
            .post(format!("{address}/api/auth/register"))
            .json(&json!({ "email": email, "password": "Correct-Horse-42" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = registered["token"].as_str().unwrap().to_owned();
        let created = http
            .post(format!("{address}/api/webhooks"))
            .bearer_auth(&token)
            .json(&json!({ "url": url, "events": ["session.state"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        users.push(
            registered["user"]["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
    }

    // A steady load: every 100 ms, a tenth of the per-second rate, spread over the users.
    let total = args.rate * args.seconds as usize;
    let per_tick = (args.rate / 10).max(1);
    let conn = db.pool.get().await.unwrap();
    let started = Instant::now();
    let mut written = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while written < total {
        tick.tick().await;
        let batch = per_tick.min(total - written);
        let user = users[(written / per_tick) % users.len()];
        conn.execute(
            "SELECT botwave_webhook_event($1, 'session.state', 'bench:' || n, '{}'::jsonb)
               FROM generate_series($2::bigint, $3::bigint) AS n",
            &[&user, &(written as i64), &((written + batch - 1) as i64)],
        )
        .await
        .unwrap();
        written += batch;
    }
    let written_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lags.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = started.elapsed();
    let mut lags = lags.lock().unwrap().clone();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "webhooks: {} events written at {} /s over {:.1} s to {} endpoints",
        total,
        args.rate,
        written_in.as_secs_f64(),
        args.endpoints
    );
    println!(
        "delivered {} in {:.1} s: {:.0} events/s",
        lags.len(),
        drained_in.as_secs_f64(),
        lags.len() as f64 / drained_in.as_secs_f64()
    );
    println!(
        "lag event -> receiver: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    drop(conn);
    let _ = stop.send(());
    let _ = running.await;
}
