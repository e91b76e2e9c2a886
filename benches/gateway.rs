//! Gateway benchmark: a real node (release build), real PostgreSQL and the WhatsApp simulator
//! in one process, measured the way a user would notice:
//!
//! - initialize → first QR code, and scan → connected;
//! - resident memory per connected idle session;
//! - send throughput and latency, from the HTTP request to the recipient phone decrypting it;
//! - websocket fan-out: memory per authenticated socket and event delivery latency.
//!
//! `cargo bench --bench gateway --features simulator -- [--sessions N] [--messages N] [--sockets N]
//! [--senders N] [--one-sender-messages N] [--sim-url URL] [--json]` (defaults 500, 2000, 1000,
//! 20, 0). The simulator shares the process unless `--sim-url` names one running on its own
//! (`http://host:port`), which is how `scripts/bench-vs-baileys` measures the node alone;
//! `--json` ends the output with one `BENCH_JSON {…}` line for that script.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use botwave::{
    auth::jwt::TokenKeys,
    config::{AuthSettings, DatabaseSettings, HttpSettings, Settings, WhatsappSettings},
    domain::Role,
    startup::Application,
};
use botwave_wa_sim::{SimConfig, Simulator};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const SECRET: &str = "benchmark-secret-benchmark-secret-benchmark";
const RECIPIENT: &str = "15559990001";

/// The recipient of the one-sender round, so its count starts from zero.
const ONE_SENDER_RECIPIENT: &str = "15559990002";

struct Args {
    sessions: usize,
    messages: usize,
    sockets: usize,
    senders: usize,
    one_sender_messages: usize,
    sim_url: Option<String>,
    json: bool,
}

fn args() -> Args {
    let mut args = Args {
        sessions: 500,
        messages: 2000,
        sockets: 1000,
        senders: 20,
        one_sender_messages: 0,
        sim_url: None,
        json: false,
    };
    let raw: Vec<String> = std::env::args().collect();
    args.json = raw.iter().any(|a| a == "--json");
    for pair in raw.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--sessions", Some(v)) => args.sessions = v,
            ("--messages", Some(v)) => args.messages = v,
            ("--sockets", Some(v)) => args.sockets = v,
            ("--senders", Some(v)) => args.senders = v,
            ("--one-sender-messages", Some(v)) => args.one_sender_messages = v,
            ("--sim-url", _) => args.sim_url = Some(pair[1].trim_end_matches('/').to_owned()),
            _ => {}
        }
    }
    args
}

/// What one send round measured.
struct SendFigures {
    accepted_per_s: f64,
    decrypted_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

impl SendFigures {
    fn json(&self) -> Value {
        json!({
            "accepted_per_s": self.accepted_per_s,
            "decrypted_per_s": self.decrypted_per_s,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
        })
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(label: &str, mut values: Vec<f64>, unit: &str) {
    values.sort_by(f64::total_cmp);
    println!(
        "{label:<44} p50 {:>8.1} {unit}   p99 {:>8.1} {unit}   max {:>8.1} {unit}   (n={})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(f64::NAN),
        values.len()
    );
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

struct Bench {
    base: String,
    control: String,
    http: reqwest::Client,
}

impl Bench {
    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Creates simulated phone `number` through the control API.
    async fn create_phone(&self, number: &str) {
        let response = self
            .http
            .post(format!("{}/phones", self.control))
            .json(&json!({ "number": number, "devices": 1 }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "phone {number}");
    }

    /// `(text, received_at ms)` of what phone `number` decrypted so far.
    async fn phone_texts(&self, number: &str) -> Vec<(String, f64)> {
        let response = self
            .http
            .get(format!("{}/phones/{number}/messages", self.control))
            .send()
            .await
            .unwrap();
        let messages: Vec<Value> = response.json().await.unwrap_or_default();
        messages
            .iter()
            .filter_map(|m| Some((m["text"].as_str()?.to_owned(), m["received_at"].as_f64()?)))
            .collect()
    }

    async fn post(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Initialize → QR → scan → connected; returns (time to QR, scan to connected).
    async fn pair(&self, token: &str, phone: &str) -> (Duration, Duration) {
        let started = Instant::now();
        assert_eq!(
            self.post("/api/whatsapp/initialize", token).await.status(),
            202
        );
        let code = loop {
            let response = self.get("/api/whatsapp/qr", token).await;
            if response.status() == 200 {
                let body: Value = response.json().await.unwrap();
                break body["code"].as_str().unwrap().to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(120), "no QR");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let to_qr = started.elapsed();
        let scanned = Instant::now();
        let scan = self
            .http
            .post(format!("{}/scan", self.control))
            .json(&json!({ "phone": phone, "qr": code }))
            .send()
            .await
            .unwrap();
        assert!(scan.status().is_success(), "{:?}", scan.text().await);
        loop {
            let status: Value = self
                .get("/api/whatsapp/status", token)
                .await
                .json()
                .await
                .unwrap();
            if status["state"] == "connected" {
                break;
            }
            assert!(
                scanned.elapsed() < Duration::from_secs(120),
                "never connected: {status}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (to_qr, scanned.elapsed())
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "botwave gateway benchmark: {} sessions, {} messages, {} sockets",
        args.sessions, args.messages, args.sockets
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );

    let db = common::TestDatabase::create().await;
    let (sim, sim_base) = match &args.sim_url {
        Some(url) => (None, url.clone()),
        None => {
            let sim = Simulator::start(SimConfig::default())
                .await
                .expect("simulator");
            let base = sim.base_url();
            (Some(sim), base)
        }
    };
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("botwave-bench-{}", uuid::Uuid::new_v4())),
        database: DatabaseSettings {
            url: Some(db.url.clone()),
            pool_size: 32,
        },
        auth: AuthSettings {
            jwt_secret: Some(SECRET.into()),
            ..AuthSettings::default()
        },
        whatsapp: WhatsappSettings {
            url: Some(format!("{}/ws/chat", sim_base.replacen("http", "ws", 1))),
        },
        cluster: Default::default(),
        webhooks: Default::default(),
        // Every client of the bench is on one address, and the sockets are one admin's.
        http: HttpSettings {
            max_connections: 20_000,
            max_connections_per_ip: 20_000,
            max_websockets_per_ip: 20_000,
            max_websockets_per_user: 20_000,
            ..HttpSettings::default()
        },
    };
    let app = Application::build(&settings).await.expect("node");
    let pool = app.pool().clone();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let bench = Arc::new(Bench {
        base,
        control: format!("{sim_base}/control"),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
    });

    // Accounts straight into the database: hashing hundreds of passwords measures argon2, not us.
    let keys = TokenKeys::new(SECRET, Duration::from_secs(3600));
    let hash = botwave::auth::password::hash("Benchmark-Password-1")
        .await
        .unwrap();
    let mut tokens = Vec::new();
    // One more account than sessions: it never pairs, and its first initialize is the
    // websocket benchmark's trigger.
    for i in 0..=args.sessions.max(1) {
        let email = botwave::domain::Email::parse(&format!("bench{i}@example.com")).unwrap();
        let user = botwave::users::create(&pool, &email, &hash, Role::Admin)
            .await
            .unwrap();
        tokens.push(keys.issue(user.id, Role::Admin, 0).unwrap().token);
    }
    bench.create_phone(RECIPIENT).await;
    bench.create_phone(ONE_SENDER_RECIPIENT).await;

    let trigger = tokens.pop().expect("the trigger account");

    // Pairing latency, one at a time so each figure is undisturbed.
    let rss_before_sessions = rss_kib();
    let measured = tokens.len().min(20);
    let (mut to_qr, mut to_connected) = (Vec::new(), Vec::new());
    for (i, token) in tokens.iter().take(measured).enumerate() {
        let (qr, connected) = bench.pair(token, &format!("1555100{i:04}")).await;
        to_qr.push(qr.as_secs_f64() * 1000.0);
        to_connected.push(connected.as_secs_f64() * 1000.0);
    }
    summary("initialize -> first QR", to_qr, "ms");
    summary("scan -> connected", to_connected, "ms");

    // The rest, concurrently.
    let started = Instant::now();
    stream::iter(tokens.iter().enumerate().skip(measured))
        .for_each_concurrent(16, |(i, token)| {
            let bench = bench.clone();
            async move {
                bench.pair(token, &format!("1555100{i:04}")).await;
            }
        })
        .await;
    println!(
        "{:<44} {:.1} s for {} sessions",
        "pairing all sessions",
        started.elapsed().as_secs_f64(),
        tokens.len()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_session = (rss_kib().saturating_sub(rss_before_sessions)) as f64 / tokens.len() as f64;
    let measured_what = if sim.is_some() {
        "node + simulator"
    } else {
        "node alone"
    };
    println!(
        "{:<44} {per_session:.0} KiB per connected idle session ({} sessions, {measured_what})",
        "memory",
        tokens.len()
    );

    let one_sender = if args.one_sender_messages > 0 {
        println!("one session sending:");
        Some(
            send_benchmark(
                &bench,
                &tokens[..1],
                ONE_SENDER_RECIPIENT,
                args.one_sender_messages,
            )
            .await,
        )
    } else {
        None
    };
    let senders = args.senders.clamp(1, tokens.len().max(1));
    println!("{senders} sessions sending:");
    let aggregate = send_benchmark(&bench, &tokens[..senders], RECIPIENT, args.messages).await;
    if args.sockets > 0 {
        websocket_benchmark(&bench, &tokens, &trigger, args.sockets).await;
    }
    if args.json {
        let figures = json!({
            "client": "botwave",
            "sessions": tokens.len(),
            "kib_per_session": per_session,
            "senders": senders,
            "one_sender": one_sender.as_ref().map(SendFigures::json),
            "aggregate": aggregate.json(),
        });
        println!("BENCH_JSON {figures}");
    }

    let _ = stop.send(());
    let _ = node.await;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
}

/// `messages` texts to `recipient`, spread over the sessions of `senders`, 64 requests in
/// flight; timed from each HTTP request to the recipient phone decrypting it.
async fn send_benchmark(
    bench: &Arc<Bench>,
    senders: &[String],
    recipient: &str,
    messages: usize,
) -> SendFigures {
    let permits = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut requests = Vec::with_capacity(messages);
    for n in 0..messages {
        let bench = bench.clone();
        let token = senders[n % senders.len()].clone();
        let recipient = recipient.to_owned();
        let permit = permits.clone().acquire_owned().await.unwrap();
        requests.push(tokio::spawn(async move {
            let text = format!("bench message {n}");
            let sent_at = now_ms();
            let response = bench
                .http
                .post(format!("{}/api/messages/send", bench.base))
                .bearer_auth(&token)
                .json(&json!({ "to": recipient, "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
            drop(permit);
            (text, sent_at)
        }));
    }
    let mut sent = std::collections::HashMap::new();
    for request in requests {
        let (text, at) = request.await.unwrap();
        sent.insert(text, at);
    }
    let accepted = started.elapsed();
    let received = loop {
        let received = bench.phone_texts(recipient).await;
        if received.len() >= messages {
            break received;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "messages lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The last decrypt, not when the poll saw it.
    let last = received.iter().map(|(_, at)| *at).fold(0.0, f64::max);
    let first_sent = sent.values().copied().fold(f64::INFINITY, f64::min);
    let delivered_s = ((last - first_sent) / 1000.0).max(f64::EPSILON);
    let mut latencies: Vec<f64> = received
        .iter()
        .filter_map(|(text, at)| Some(at - sent.get(text)?))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let figures = SendFigures {
        accepted_per_s: messages as f64 / accepted.as_secs_f64(),
        decrypted_per_s: messages as f64 / delivered_s,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
    };
    println!(
        "{:<44} {:.0} messages/s ({} in {:.2} s)",
        "send API accepted (202)",
        figures.accepted_per_s,
        messages,
        accepted.as_secs_f64()
    );
    println!(
        "{:<44} {:.0} messages/s",
        "sent and decrypted by the recipient", figures.decrypted_per_s
    );
    summary("HTTP request -> recipient decrypted", latencies, "ms");
    figures
}

async fn websocket_benchmark(bench: &Arc<Bench>, tokens: &[String], trigger: &str, sockets: usize) {
    let url = format!("{}/ws", bench.base.replacen("http", "ws", 1));
    let rss_before = rss_kib();
    let mut connected = Vec::with_capacity(sockets);
    for i in 0..sockets {
        // A small client-side buffer, so the figure is mostly what the node spends per socket.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
                .await
                .expect("upgrade");
        let token = &tokens[i % tokens.len()];
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                json!({ "type": "authenticate", "token": token }).to_string(),
            ))
            .await
            .unwrap();
        let _authenticated = socket.next().await;
        connected.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_socket = rss_kib().saturating_sub(rss_before) as f64 / sockets.max(1) as f64;
    println!(
        "{:<44} {per_socket:.1} KiB per authenticated socket ({sockets} held; client ends in-process, 4 KiB buffers)",
        "websocket memory"
    );

    // Every socket is an admin's, so each receives every session_state: start one more session
    // (its first state change is published at once) and time the event's arrival everywhere.
    let (collected_tx, mut collected_rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    for mut socket in connected {
        let tx = collected_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(text) = message
                    && text.contains("\"session_state\"")
                {
                    let _ = tx.send(now_ms());
                    break;
                }
            }
        });
    }
    drop(collected_tx);
    let triggered = now_ms();
    let _ = bench.post("/api/whatsapp/initialize", trigger).await;
    let mut arrivals = Vec::new();
    while let Ok(Some(at)) =
        tokio::time::timeout(Duration::from_secs(30), collected_rx.recv()).await
    {
        arrivals.push(at);
        if arrivals.len() == sockets {
            break;
        }
    }
    println!(
        "{:<44} {} of {sockets} sockets got the event",
        "websocket fan-out",
        arrivals.len()
    );
    summary(
        "HTTP request -> event on each socket",
        arrivals.iter().map(|at| at - triggered).collect(),
        "ms",
    );
    let first = arrivals.iter().copied().fold(f64::INFINITY, f64::min);
    summary(
        "first socket -> each other socket",
        arrivals.iter().map(|at| at - first).collect(),
        "ms",
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
