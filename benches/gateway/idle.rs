//! Many connected idle sessions on one node, the way an installation runs them: `botwave
//! serve` in its own process and the simulator in another, so the node's memory and CPU are
//! its own. Measures the node's resident memory per session, its CPU while every session
//! sits idle, and a restart (SIGTERM, start again) until WhatsApp sees every session logged in
//! again; then, when asked, keeps adding sessions to find how many the machine holds.

use std::time::{Duration, Instant};

use botwave::{auth::jwt::TokenKeys, db::DbPool, domain::Role};
use futures_util::{StreamExt, stream};

use crate::node::{JWT_SECRET, NodeProcess};
use crate::simulator::SimProcess;
use crate::statements;
use crate::usage::{Consumer, NodeCpu, Probe, Usage, rss_kib};

/// Time for sessions just paired (or resumed) to finish their first sync before memory and
/// CPU are read.
const SETTLE: Duration = Duration::from_secs(10);

/// A growth step whose pairing fails for more than this share ends the search.
const FAILURES_TOLERATED: f64 = 0.01;

pub struct IdleOptions {
    pub sessions: usize,
    /// Pairings running at once.
    pub pairing_concurrency: usize,
    pub idle_window: Duration,
    /// Keep adding sessions, `grow_step` at a time, up to this many (0: do not).
    pub grow_to: usize,
    pub grow_step: usize,
    /// The node's `whatsapp.resume_rate` (sessions resumed a second at start); its default
    /// when unset.
    pub resume_rate: Option<u32>,
}

pub struct IdleFigures {
    pub sessions: usize,
    pub pairing_concurrency: usize,
    pub pairing: Duration,
    pub pairing_failures: usize,
    /// Node RSS growth from ready-without-sessions to all sessions connected, per session.
    pub kib_per_session: f64,
    /// Node RSS over the number of sessions (the fixed part included).
    pub kib_total_per_session: f64,
    pub idle_cpu_percent: f64,
    pub idle: Usage,
    pub stop_took: Duration,
    /// From starting the process again to `/readyz`.
    pub ready_after: Duration,
    /// From starting the process again to every session logged in to WhatsApp; `None`:
    /// not all within the patience.
    pub all_connected_after: Option<Duration>,
    /// Logins WhatsApp counted since the restart (a session logging in twice counts 2).
    pub connected_after_restart: u64,
    pub restart: Usage,
    /// `(sessions, KiB per session, idle CPU %)` of each growth step held.
    pub grown: Vec<(usize, f64, f64)>,
    /// Why growing stopped, when it stopped before its target.
    pub grow_stopped: Option<String>,
}

/// Sessions of this phase pair with phones numbered from here.
const FIRST_PHONE: u64 = 16_000_000_000;

pub async fn run(options: &IdleOptions, db_url: &str, db_pool: &DbPool) -> IdleFigures {
    let scratch = std::env::temp_dir().join(format!("botwave-bench-idle-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let sim = SimProcess::start().await;
    let mut node = NodeProcess::spawn(db_url, &sim, &scratch, options.resume_rate);
    node.wait_ready(Duration::from_secs(120)).await;
    let mut probe = Probe {
        node: NodeCpu::Process(node.pid()),
        simulator_pid: sim.pid(),
        postgres: db_pool.clone(),
        node_pool: None,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_empty = rss_kib(node.pid());

    let mut tokens = accounts(db_pool, 0, options.sessions).await;
    let pairing = probe
        .start(&format!("pairing {} sessions", options.sessions))
        .await;
    let started = Instant::now();
    let pairing_failures = pair_all(&node, &sim, &tokens, 0, options.pairing_concurrency).await;
    let pairing_took = started.elapsed();
    let pairing = pairing.finish().await;
    println!(
        "  paired {} sessions in {:.1} s ({} failed)\n{}",
        options.sessions,
        pairing_took.as_secs_f64(),
        pairing_failures,
        pairing.report()
    );
    tokio::time::sleep(SETTLE).await;
    let rss = rss_kib(node.pid());
    let sessions = options.sessions.max(1) as f64;
    let kib_per_session = rss.saturating_sub(rss_empty) as f64 / sessions;
    let kib_total_per_session = rss as f64 / sessions;
    println!(
        "  node RSS {} MiB with {} sessions ({} MiB with none): {kib_per_session:.0} KiB per session added, {kib_total_per_session:.0} KiB per session in all",
        rss / 1024,
        options.sessions,
        rss_empty / 1024
    );
    let idle = idle_window(&probe, options.sessions, options.idle_window).await;
    let idle_cpu_percent = idle.percent_of_core(Consumer::Node);

    // Restart: what a service manager's restart does.
    let logins_before = sim.stats().await.logins;
    let stop_took = node.stop(Duration::from_secs(120)).await;
    let counting = statements::Counter::start(db_pool).await;
    println!("  SIGTERM -> exited in {:.1} s", stop_took.as_secs_f64());
    match options.resume_rate {
        Some(rate) => println!("  resuming {rate} sessions a second (--resume-rate)"),
        None => println!("  resuming at the node's default whatsapp.resume_rate"),
    }
    let restarted = Instant::now();
    node.start_again();
    probe.node = NodeCpu::Process(node.pid());
    let restart = probe
        .start("restart until every session is connected")
        .await;
    node.wait_ready(Duration::from_secs(300)).await;
    let ready_after = restarted.elapsed();
    let patience = Duration::from_secs(300).max(Duration::from_millis(30 * tokens.len() as u64));
    let wanted = options.sessions as u64;
    let (all_connected_after, connected_after_restart) = loop {
        let stats = sim.stats().await;
        let logged_in_again = stats.logins.saturating_sub(logins_before);
        if logged_in_again >= wanted && stats.connections >= wanted {
            break (Some(restarted.elapsed()), logged_in_again);
        }
        if restarted.elapsed() > patience {
            break (None, logged_in_again);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let restart = restart.finish().await;
    match all_connected_after {
        Some(after) => println!(
            "  started again: ready after {:.1} s, all {} sessions logged in to WhatsApp after {:.1} s ({:.1} s after ready)",
            ready_after.as_secs_f64(),
            options.sessions,
            after.as_secs_f64(),
            (after - ready_after).as_secs_f64()
        ),
        None => println!(
            "  started again: ready after {:.1} s; {connected_after_restart} logins since, but never all {} sessions connected at once within {:.0} s",
            ready_after.as_secs_f64(),
            options.sessions,
            patience.as_secs_f64()
        ),
    }
    println!("{}", restart.report());
    if let Some(counting) = counting {
        counting.report(options.sessions, "session resumed").await;
    }
    if all_connected_after.is_none() {
        // What the node complained of is what kept it from converging.
        println!("  the node's log since the start, most frequent warnings:");
        for (count, line) in frequent_warnings(&scratch.join("node.log"), 6) {
            println!("    {count:>7}  {line}");
        }
    }

    let mut grown = Vec::new();
    let mut grow_stopped = None;
    let mut held = options.sessions;
    while options.grow_to > held && options.grow_step > 0 {
        let step = options.grow_step.min(options.grow_to - held);
        tokens.extend(accounts(db_pool, held, step).await);
        let started = Instant::now();
        let failures = pair_all(
            &node,
            &sim,
            &tokens[held..],
            held,
            options.pairing_concurrency,
        )
        .await;
        let connected = sim.stats().await.connections;
        println!(
            "  growing: paired {step} more in {:.1} s ({failures} failed); the simulator holds {connected} connections",
            started.elapsed().as_secs_f64()
        );
        if failures as f64 > FAILURES_TOLERATED * step as f64 {
            grow_stopped = Some(format!(
                "{failures} of {step} pairings failed going past {held} sessions"
            ));
            break;
        }
        held += step;
        tokio::time::sleep(SETTLE).await;
        let rss = rss_kib(node.pid());
        let usage = idle_window(&probe, held, Duration::from_secs(10)).await;
        let per_session = rss.saturating_sub(rss_empty) as f64 / held as f64;
        grown.push((held, per_session, usage.percent_of_core(Consumer::Node)));
        println!(
            "  {held} sessions: node RSS {} MiB, {per_session:.0} KiB per session added",
            rss / 1024
        );
    }
    node.stop(Duration::from_secs(120)).await;
    let _ = std::fs::remove_dir_all(&scratch);
    IdleFigures {
        sessions: options.sessions,
        pairing_concurrency: options.pairing_concurrency,
        pairing: pairing_took,
        pairing_failures,
        kib_per_session,
        kib_total_per_session,
        idle_cpu_percent,
        idle,
        stop_took,
        ready_after,
        all_connected_after,
        connected_after_restart,
        restart,
        grown,
        grow_stopped,
    }
}

/// CPU of everything while `sessions` sessions sit idle for `window`.
async fn idle_window(probe: &Probe, sessions: usize, window: Duration) -> Usage {
    let running = probe.start(&format!("{sessions} idle sessions")).await;
    tokio::time::sleep(window).await;
    let usage = running.finish().await;
    println!(
        "  idle: node {:.1}% of a core, PostgreSQL {:.1}%, simulator {:.1}%\n{}",
        usage.percent_of_core(Consumer::Node),
        usage.percent_of_core(Consumer::Postgres),
        usage.percent_of_core(Consumer::Simulator),
        usage.report()
    );
    usage
}

/// The `limit` most frequent WARN and ERROR lines of the log at `path`, told apart by their
/// level, target and message (the fields after it, which vary, are left out).
fn frequent_warnings(path: &std::path::Path, limit: usize) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        let Some(start) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let message = &line[start + 1..];
        // Fields start with the first `key=`; the message is what comes before.
        let end = message
            .split(' ')
            .take_while(|word| !word.contains('='))
            .map(|word| word.len() + 1)
            .sum::<usize>()
            .min(message.len());
        *counts.entry(message[..end].trim().to_owned()).or_default() += 1;
    }
    let mut frequent: Vec<(usize, String)> = counts.into_iter().map(|(m, n)| (n, m)).collect();
    frequent.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    frequent.truncate(limit);
    frequent
}

/// `count` accounts numbered from `first`, straight into the database (hashing thousands of
/// passwords would measure argon2), and their login tokens.
async fn accounts(pool: &DbPool, first: usize, count: usize) -> Vec<String> {
    let keys = TokenKeys::new(JWT_SECRET, Duration::from_secs(24 * 3600));
    let hash = botwave::auth::password::hash("Benchmark-Password-1")
        .await
        .expect("a password hash");
    stream::iter(first..first + count)
        .map(|i| {
            let (pool, hash, keys) = (pool.clone(), hash.clone(), keys.clone());
            async move {
                let email = botwave::domain::Email::parse(&format!("idle{i}@example.com"))
                    .expect("an email");
                let user = botwave::users::create(&pool, &email, &hash, Role::User)
                    .await
                    .expect("an account");
                keys.issue(user.id, Role::User, 0).expect("a token").token
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// Pairs every token with a phone of its own; answers how many failed.
async fn pair_all(
    node: &NodeProcess,
    sim: &SimProcess,
    tokens: &[String],
    first: usize,
    concurrency: usize,
) -> usize {
    let failures: Vec<String> = stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| async move {
            let phone = (FIRST_PHONE + (first + i) as u64).to_string();
            node.api.pair(sim, token, &phone).await.err()
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    if let Some(first) = failures.first() {
        eprintln!("  {} pairings failed, the first: {first}", failures.len());
    }
    failures.len()
}
