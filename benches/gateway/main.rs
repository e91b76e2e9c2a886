//! Gateway benchmark: the figures of the send-pipeline and scale issue, each printed next to
//! its target, with the CPU split that says what bounded it.
//!
//! `cargo bench --bench gateway --features simulator -- [options]` runs, against real
//! PostgreSQL and the WhatsApp simulator in a process of its own:
//!
//! 1. send phases, the node inside the bench process (on a runtime of its own, so that its
//!    CPU time and pool waits are read apart from the load generator's):
//!    (a) a burst from `--senders` sessions (100): accepted 202/s and decrypted by the
//!    recipients/s; (b) one session sending to `--recipients` phones (50) with nothing
//!    pacing it; (c) a steady `--steady-rate` (500/s) for `--steady-seconds` (20) over the
//!    senders: latency from the HTTP request to the recipient decrypting it;
//! 2. websocket fan-out: `--sockets` (1,000) admin sockets, memory per socket and the time for
//!    one state change to reach each;
//! 3. `--idle-sessions` (10,000) connected idle sessions on `botwave serve` in its own
//!    process: RSS per session, idle CPU, and a restart until all are logged in again; with
//!    `--grow-to N` it then adds `--grow-step` (2,500) at a time up to N; `--resume-rate N`
//!    sets the node's `whatsapp.resume_rate` (its default, 100 a second, when not given).
//!
//! Other options: `--messages` (20,000, burst a), `--one-sender-messages` (5,000, b),
//! `--in-flight` (256 requests at a time in bursts), `--sessions` (paired for the send
//! phases, at least the senders), `--idle-seconds` (30), `--pairing-concurrency` (32),
//! `--only send|idle`, `--sim-url URL` (a simulator already running; its CPU is not read),
//! `--json` (a last `BENCH_JSON {…}` line, for `scripts/bench-vs-baileys`).
//!
//! Run by `cargo test` (no `--bench` argument) it is a smoke test instead: a few sessions and a
//! few hundred messages through every phase, no thresholds, and it fails unless every message
//! reached its recipient and every session came back after the restart. It answers to
//! test-name filters as `gateway_smoke`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod idle;
mod node;
mod send;
mod simulator;
mod statements;
mod usage;
mod websockets;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use botwave::{auth::jwt::TokenKeys, domain::Role};
use futures_util::{StreamExt, stream};
use serde_json::json;

use node::{InProcessNode, JWT_SECRET};
use simulator::SimProcess;
use usage::{Consumer, NodeCpu, Probe};

/// Set when this run is the smoke test.
static SMOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The smoke test's name, for `cargo test` filters.
const SMOKE_TEST_NAME: &str = "gateway_smoke";

struct Options {
    sessions: usize,
    senders: usize,
    recipients: usize,
    messages: usize,
    one_sender_messages: usize,
    steady_rate: f64,
    steady_seconds: f64,
    in_flight: usize,
    sockets: usize,
    idle_sessions: usize,
    idle_seconds: u64,
    pairing_concurrency: usize,
    grow_to: usize,
    grow_step: usize,
    resume_rate: Option<u32>,
    only: Option<String>,
    sim_url: Option<String>,
    json: bool,
    /// A smoke test: small sizes, and every message must arrive.
    smoke: bool,
}

impl Options {
    fn bench() -> Self {
        Self {
            sessions: 0,
            senders: 100,
            recipients: 50,
            messages: 20_000,
            one_sender_messages: 5_000,
            steady_rate: 500.0,
            steady_seconds: 20.0,
            in_flight: 256,
            sockets: 1_000,
            idle_sessions: 10_000,
            idle_seconds: 30,
            pairing_concurrency: 32,
            grow_to: 0,
            grow_step: 2_500,
            resume_rate: None,
            only: None,
            sim_url: None,
            json: false,
            smoke: false,
        }
    }

    fn smoke() -> Self {
        Self {
            sessions: 0,
            senders: 3,
            recipients: 3,
            messages: 150,
            one_sender_messages: 60,
            steady_rate: 50.0,
            steady_seconds: 2.0,
            in_flight: 16,
            sockets: 5,
            idle_sessions: 3,
            idle_seconds: 2,
            pairing_concurrency: 3,
            grow_to: 0,
            grow_step: 0,
            resume_rate: None,
            only: None,
            sim_url: None,
            json: false,
            smoke: true,
        }
    }

    fn parse(raw: &[String]) -> Self {
        let mut options = Self::bench();
        options.json = raw.iter().any(|a| a == "--json");
        for pair in raw.windows(2) {
            let (flag, value) = (pair[0].as_str(), pair[1].as_str());
            let number = || -> usize {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("{flag} needs a number, not {value:?}"))
            };
            match flag {
                "--sessions" => options.sessions = number(),
                "--senders" => options.senders = number(),
                "--recipients" => options.recipients = number(),
                "--messages" => options.messages = number(),
                "--one-sender-messages" => options.one_sender_messages = number(),
                "--steady-rate" => options.steady_rate = number() as f64,
                "--steady-seconds" => options.steady_seconds = number() as f64,
                "--in-flight" => options.in_flight = number(),
                "--sockets" => options.sockets = number(),
                "--idle-sessions" => options.idle_sessions = number(),
                "--idle-seconds" => options.idle_seconds = number() as u64,
                "--pairing-concurrency" => options.pairing_concurrency = number(),
                "--grow-to" => options.grow_to = number(),
                "--grow-step" => options.grow_step = number(),
                "--resume-rate" => {
                    options.resume_rate = Some(u32::try_from(number()).unwrap_or(u32::MAX))
                }
                "--only" => options.only = Some(value.to_owned()),
                "--sim-url" => options.sim_url = Some(value.to_owned()),
                _ => {}
            }
        }
        options.normalized()
    }

    /// At least one sender and recipient, and a session for every sender.
    fn normalized(mut self) -> Self {
        self.senders = self.senders.max(1);
        self.recipients = self.recipients.max(1);
        self.sessions = self.sessions.max(self.senders);
        self
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

/// Under `cargo test`: whether the arguments (test-name filters, libtest flags) select the
/// smoke test. Flags are accepted and ignored, except `--list`, `--ignored` and `--skip`.
enum SmokeSelection {
    Run,
    Skip,
    List,
}

fn smoke_selection(raw: &[String]) -> SmokeSelection {
    // libtest flags that take a value as the next argument.
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "-Z",
        "--shuffle-seed",
        "--report-time",
    ];
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut list, mut exact, mut only_ignored) = (false, false, false);
    let mut args = raw.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--exact" => exact = true,
            "--ignored" => only_ignored = true,
            "--skip" => skips.extend(args.next().cloned()),
            flag if WITH_VALUE.contains(&flag) => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
    }
    let matches = |pattern: &String| {
        if exact {
            pattern == SMOKE_TEST_NAME
        } else {
            SMOKE_TEST_NAME.contains(pattern.as_str())
        }
    };
    let selected = !only_ignored
        && (filters.is_empty() || filters.iter().any(matches))
        && !skips
            .iter()
            .any(|skip| SMOKE_TEST_NAME.contains(skip.as_str()));
    match (selected, list) {
        (true, true) => SmokeSelection::List,
        (true, false) => SmokeSelection::Run,
        (false, _) => SmokeSelection::Skip,
    }
}

#[tokio::main]
async fn main() {
    if simulator::is_child() {
        simulator::run_child().await;
        return;
    }
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let options = if raw.iter().any(|a| a == "--bench") {
        Options::parse(&raw)
    } else {
        match smoke_selection(&raw) {
            SmokeSelection::List => {
                println!("{SMOKE_TEST_NAME}: test");
                return;
            }
            SmokeSelection::Skip => {
                println!("\nrunning 0 tests (filtered out: {SMOKE_TEST_NAME})\n");
                return;
            }
            SmokeSelection::Run => {
                println!("\nrunning 1 test: {SMOKE_TEST_NAME} (the gateway bench, small)");
                Options::smoke().normalized()
            }
        }
    };
    SMOKE.store(options.smoke, std::sync::atomic::Ordering::Relaxed);
    raise_open_files_limit();
    let started = Instant::now();
    let figures = run(&options).await;
    if options.smoke {
        figures.check_complete();
        println!(
            "test {SMOKE_TEST_NAME} ... ok ({:.1} s)\n",
            started.elapsed().as_secs_f64()
        );
    } else {
        figures.print_table();
    }
}

/// Everything measured, for the final table and the smoke test's checks.
#[derive(Default)]
struct Figures {
    burst: Option<send::SendFigures>,
    one_sender: Option<send::SendFigures>,
    steady: Option<send::SendFigures>,
    websockets: Option<websockets::FanOut>,
    idle: Option<idle::IdleFigures>,
    senders: usize,
    recipients: usize,
    steady_rate: f64,
}

async fn run(options: &Options) -> Figures {
    println!(
        "botwave gateway benchmark: {} cores, {}; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let mut figures = Figures {
        senders: options.senders,
        recipients: options.recipients,
        steady_rate: options.steady_rate,
        ..Figures::default()
    };
    let mut kib_per_paired_session = f64::NAN;
    if options.runs("send") {
        let db = common::TestDatabase::create().await;
        let sim = match &options.sim_url {
            Some(url) => SimProcess::external(url),
            None => SimProcess::start().await,
        };
        let node = InProcessNode::start(&db.url, sim.ws_url()).await;
        let probe = Probe {
            node: NodeCpu::InProcess,
            simulator_pid: sim.pid(),
            postgres: db.pool.clone(),
            node_pool: Some(node.pool.clone()),
        };
        let keys = TokenKeys::new(JWT_SECRET, Duration::from_secs(24 * 3600));
        let hash = botwave::auth::password::hash("Benchmark-Password-1")
            .await
            .expect("a password hash");
        let account = |name: String, role: Role| {
            let (pool, hash, keys) = (db.pool.clone(), hash.clone(), keys.clone());
            async move {
                let email = botwave::domain::Email::parse(&format!("{name}@example.com"))
                    .expect("an email");
                let user = botwave::users::create(&pool, &email, &hash, role)
                    .await
                    .expect("an account");
                keys.issue(user.id, role, 0).expect("a token").token
            }
        };
        let tokens: Vec<String> = stream::iter(0..options.sessions)
            .map(|i| account(format!("sender{i}"), Role::User))
            .buffered(16)
            .collect()
            .await;
        let admin = account("admin".into(), Role::Admin).await;
        let trigger = account("trigger".into(), Role::User).await;
        let recipients: Vec<String> = (0..options.recipients)
            .map(|i| format!("1555999{i:04}"))
            .collect();
        for recipient in &recipients {
            sim.create_phone(recipient).await;
        }

        println!("pairing {} sessions:", tokens.len());
        let rss_before = usage::rss_kib(std::process::id());
        kib_per_paired_session =
            pair_senders(&node.api, &sim, &probe, &tokens, rss_before, options).await;

        let traffic = send::Traffic {
            api: &node.api,
            sim: &sim,
            probe: &probe,
            senders: &tokens[..options.senders],
            recipients: &recipients,
        };
        println!(
            "(a) burst: {} sessions send {} messages to {} recipients, {} requests in flight:",
            options.senders, options.messages, options.recipients, options.in_flight
        );
        let counting = statements::Counter::start(&db.pool).await;
        let burst = send::burst(&traffic, "a", options.messages, options.in_flight).await;
        if let Some(counting) = counting {
            counting.report(burst.decrypted, "message delivered").await;
        }
        target_line(
            "accepted (202)",
            burst.accepted_per_s,
            ">= 5,000 req/s",
            burst.accepted_per_s >= 5000.0,
        );
        target_line(
            "HTTP accepted -> recipient decrypted",
            burst.decrypted_per_s,
            ">= 2,000 msg/s",
            burst.decrypted_per_s >= 2000.0,
        );
        figures.burst = Some(burst);

        if options.one_sender_messages > 0 {
            println!(
                "(b) one session sends {} messages to {} recipients, no pacing:",
                options.one_sender_messages, options.recipients
            );
            let one = send::Traffic {
                senders: &tokens[..1],
                ..traffic
            };
            let one = send::burst(&one, "b", options.one_sender_messages, options.in_flight).await;
            target_line(
                "one session, decrypted by recipients",
                one.decrypted_per_s,
                ">= 500 msg/s",
                one.decrypted_per_s >= 500.0,
            );
            figures.one_sender = Some(one);
        }

        if options.steady_seconds > 0.0 {
            let traffic = send::Traffic {
                senders: &tokens[..options.senders],
                ..traffic
            };
            println!(
                "(c) steady {:.0} messages/s for {:.0} s over {} sessions:",
                options.steady_rate, options.steady_seconds, options.senders
            );
            let steady = send::steady(
                &traffic,
                "c",
                options.steady_rate,
                Duration::from_secs_f64(options.steady_seconds),
            )
            .await;
            target_line(
                "steady: HTTP -> decrypted p50 (ms)",
                steady.latency_p50_ms,
                "< 30 ms",
                steady.latency_p50_ms < 30.0,
            );
            target_line(
                "steady: HTTP -> decrypted p99 (ms)",
                steady.latency_p99_ms,
                "< 150 ms",
                steady.latency_p99_ms < 150.0,
            );
            figures.steady = Some(steady);
        }

        if options.sockets > 0 {
            println!("websockets: {} admin sockets:", options.sockets);
            figures.websockets =
                Some(websockets::fan_out(&node.api, &admin, &trigger, options.sockets).await);
        }
        node.stop().await;
    }

    if options.runs("idle") && options.idle_sessions > 0 {
        println!(
            "(d) {} connected idle sessions, node and simulator each in a process of its own:",
            options.idle_sessions
        );
        let db = common::TestDatabase::create().await;
        let idle_options = idle::IdleOptions {
            sessions: options.idle_sessions,
            pairing_concurrency: options.pairing_concurrency,
            idle_window: Duration::from_secs(options.idle_seconds),
            grow_to: options.grow_to,
            grow_step: options.grow_step,
            resume_rate: options.resume_rate,
        };
        let idle = idle::run(&idle_options, &db.url, &db.pool).await;
        target_line(
            "node RSS per idle session (KiB)",
            idle.kib_per_session,
            "<= 128 KiB",
            idle.kib_per_session <= 128.0,
        );
        target_line(
            "node CPU at idle (% of a core)",
            idle.idle_cpu_percent,
            "< 5%",
            idle.idle_cpu_percent < 5.0,
        );
        let restart = idle
            .all_connected_after
            .map_or(f64::INFINITY, |d| d.as_secs_f64());
        target_line(
            "restart -> all connected (s)",
            restart,
            "< 30 s",
            restart < 30.0,
        );
        figures.idle = Some(idle);
    }

    if options.json {
        let line = json!({
            "client": "botwave",
            "sessions": options.sessions,
            "kib_per_session": kib_per_paired_session,
            "senders": options.senders,
            "one_sender": figures.one_sender.as_ref().map(send::SendFigures::json),
            "aggregate": figures.burst.as_ref().map(send::SendFigures::json),
        });
        println!("BENCH_JSON {line}");
    }
    figures
}

/// Pairs the send phases' sessions: the first 20 one at a time (their latencies are the
/// figures), the rest 16 at a time. Answers the node's memory growth per session.
async fn pair_senders(
    api: &node::Api,
    sim: &SimProcess,
    probe: &Probe,
    tokens: &[String],
    rss_before: u64,
    options: &Options,
) -> f64 {
    let all_started = Instant::now();
    let measured = tokens.len().min(20);
    let (mut to_qr, mut to_connected) = (Vec::new(), Vec::new());
    let phone = |i: usize| format!("1555100{i:04}");
    for (i, token) in tokens.iter().enumerate().take(measured) {
        let (qr, connected) = api.pair(sim, token, &phone(i)).await.expect("a pairing");
        to_qr.push(qr.as_secs_f64() * 1000.0);
        to_connected.push(connected.as_secs_f64() * 1000.0);
    }
    summary("  initialize -> first QR", to_qr, "ms");
    summary("  scan -> connected", to_connected, "ms");
    let pairing = probe.start("pairing").await;
    stream::iter(tokens.iter().enumerate().skip(measured))
        .for_each_concurrent(16, |(i, token)| async move {
            api.pair(sim, token, &phone(i)).await.expect("a pairing");
        })
        .await;
    let pairing = pairing.finish().await;
    println!(
        "  paired all {} in {:.1} s (the first {measured} one at a time, the rest 16 at a time)",
        tokens.len(),
        all_started.elapsed().as_secs_f64()
    );
    if !options.smoke {
        println!("{}", pairing.report());
    }
    // Let the first syncs end before memory is read.
    tokio::time::sleep(Duration::from_secs(if options.smoke { 1 } else { 3 })).await;
    let per_session = usage::rss_kib(std::process::id()).saturating_sub(rss_before) as f64
        / tokens.len().max(1) as f64;
    println!(
        "  memory: {per_session:.0} KiB per connected session (bench process: node and its clients)"
    );
    per_session
}

impl Figures {
    /// The smoke test's assertions: nothing lost, everything came back.
    fn check_complete(&self) {
        for (phase, figures) in [
            ("burst", &self.burst),
            ("one sender", &self.one_sender),
            ("steady", &self.steady),
        ] {
            let figures = figures
                .as_ref()
                .unwrap_or_else(|| panic!("the {phase} phase ran"));
            assert_eq!(
                figures.accepted, figures.offered,
                "{phase}: every send accepted"
            );
            assert_eq!(
                figures.decrypted, figures.accepted,
                "{phase}: every accepted message decrypted by its recipient"
            );
        }
        let fan_out = self.websockets.as_ref().expect("the websocket phase ran");
        assert_eq!(
            fan_out.reached, fan_out.sockets,
            "every socket got the event"
        );
        let idle = self.idle.as_ref().expect("the idle phase ran");
        assert_eq!(idle.pairing_failures, 0, "every idle session paired");
        assert!(
            idle.all_connected_after.is_some(),
            "every session logged in again after the restart ({} logins)",
            idle.connected_after_restart
        );
    }

    /// Every figure next to its target, and what bounded it.
    fn print_table(&self) {
        let mut rows: Vec<(String, String, &str, Option<bool>, String)> = Vec::new();
        if let Some(burst) = &self.burst {
            rows.push((
                format!("accepted (202), {} sessions", self.senders),
                format!("{:.0} req/s", burst.accepted_per_s),
                ">= 5,000 req/s",
                Some(burst.accepted_per_s >= 5000.0),
                burst.usage.verdict(),
            ));
            rows.push((
                format!("accepted -> decrypted, {} sessions", self.senders),
                format!("{:.0} msg/s", burst.decrypted_per_s),
                ">= 2,000 msg/s",
                Some(burst.decrypted_per_s >= 2000.0),
                burst.usage.verdict(),
            ));
        }
        if let Some(one) = &self.one_sender {
            rows.push((
                format!("one session to {} recipients", self.recipients),
                format!("{:.0} msg/s", one.decrypted_per_s),
                ">= 500 msg/s",
                Some(one.decrypted_per_s >= 500.0),
                one.usage.verdict(),
            ));
        }
        if let Some(steady) = &self.steady {
            rows.push((
                format!("latency at {:.0} msg/s, p50", self.steady_rate),
                format!("{:.1} ms", steady.latency_p50_ms),
                "< 30 ms",
                Some(steady.latency_p50_ms < 30.0),
                steady.usage.verdict(),
            ));
            rows.push((
                format!("latency at {:.0} msg/s, p99", self.steady_rate),
                format!("{:.1} ms", steady.latency_p99_ms),
                "< 150 ms",
                Some(steady.latency_p99_ms < 150.0),
                steady.usage.verdict(),
            ));
        }
        if let Some(fan_out) = &self.websockets {
            rows.push((
                format!(
                    "websocket fan-out to {} sockets, p50 / p99",
                    fan_out.sockets
                ),
                format!("{:.1} / {:.1} ms", fan_out.p50_ms, fan_out.p99_ms),
                "-",
                None,
                format!("{:.0} KiB per socket", fan_out.kib_per_socket),
            ));
        }
        if let Some(idle) = &self.idle {
            let n = idle.sessions;
            rows.push((
                format!(
                    "pairing {n} sessions, {} at a time",
                    idle.pairing_concurrency
                ),
                format!(
                    "{:.1} s ({} failed)",
                    idle.pairing.as_secs_f64(),
                    idle.pairing_failures
                ),
                "-",
                None,
                "-".into(),
            ));
            rows.push((
                format!("node RSS per idle session, {n}"),
                format!(
                    "{:.0} KiB ({:.0} with the fixed part)",
                    idle.kib_per_session, idle.kib_total_per_session
                ),
                "<= 128 KiB",
                Some(idle.kib_per_session <= 128.0),
                "-".into(),
            ));
            rows.push((
                format!("node CPU at idle, {n}"),
                format!("{:.1}% of a core", idle.idle_cpu_percent),
                "< 5%",
                Some(idle.idle_cpu_percent < 5.0),
                format!(
                    "PostgreSQL {:.1}%, simulator {:.1}%",
                    idle.idle.percent_of_core(Consumer::Postgres),
                    idle.idle.percent_of_core(Consumer::Simulator)
                ),
            ));
            rows.push((
                format!("restart -> all {n} connected"),
                idle.all_connected_after.map_or_else(
                    || format!("not all at once ({} logins)", idle.connected_after_restart),
                    |after| {
                        format!(
                            "{:.1} s ({:.1} s after ready; the old process took {:.1} s to exit)",
                            after.as_secs_f64(),
                            (after - idle.ready_after).as_secs_f64(),
                            idle.stop_took.as_secs_f64()
                        )
                    },
                ),
                "< 30 s",
                Some(
                    idle.all_connected_after
                        .is_some_and(|d| d.as_secs_f64() < 30.0),
                ),
                idle.restart.verdict(),
            ));
            if let Some((held, kib, cpu)) = idle.grown.last() {
                rows.push((
                    "largest number of sessions held".into(),
                    format!("{held} ({kib:.0} KiB each, idle {cpu:.1}% of a core)"),
                    "aim 25,000",
                    Some(*held >= 25_000),
                    idle.grow_stopped
                        .clone()
                        .unwrap_or_else(|| "reached --grow-to".into()),
                ));
            }
        }
        println!(
            "\n| figure | measured | target | met | bounded by |\n| --- | --- | --- | --- | --- |"
        );
        for (figure, measured, target, met, bound) in rows {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            println!("| {figure} | {measured} | {target} | {met} | {bound} |");
        }
    }
}

/// A figure next to its target; the smoke test has no targets, so it prints none.
fn target_line(label: &str, value: f64, target: &str, met: bool) {
    if SMOKE.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    println!(
        "  => {label:<40} {value:>10.1}   target {target:<16} {}",
        if met { "met" } else { "MISSED" }
    );
}

/// Lets the node and the simulator, which inherit it, hold tens of thousands of sockets.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = libc::rlimit {
            rlim_cur: limit.rlim_max.max(262_144),
            rlim_max: limit.rlim_max.max(262_144),
        };
        // Raising the hard limit needs privileges; without them the soft one goes up to it.
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn summary(label: &str, mut values: Vec<f64>, unit: &str) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&values, 0.5), percentile(&values, 0.99));
    println!(
        "{label:<44} p50 {p50:>8.1} {unit}   p99 {p99:>8.1} {unit}   max {:>8.1} {unit}   (n={})",
        values.last().copied().unwrap_or(f64::NAN),
        values.len()
    );
    (p50, p99)
}

/// Unix time in milliseconds: the simulator stamps decrypts with the same clock.
pub(crate) fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
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
