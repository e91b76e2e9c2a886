//! The send phases: texts posted to `POST /api/messages/send` and counted where they end, in
//! the recipient phones' message lists (what recipients decrypted, not the copies each send
//! also makes for the sender's own phone).
//!
//! - a burst: all messages offered at once with a fixed number of requests in flight, for
//!   the accepted (202) rate and the rate at which recipients decrypt;
//! - a steady rate: messages offered on a fixed schedule whatever the answers, for the
//!   latency a user sees when the node is not overloaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::node::Api;
use crate::simulator::SimProcess;
use crate::usage::{Probe, Usage};
use crate::{now_ms, percentile};

/// Gives up on the rest when recipients decrypted nothing new for this long.
const STALL: Duration = Duration::from_secs(60);

/// Who sends to whom: message `n` goes from `senders[n % senders]` to the recipient after
/// the one that sender used last, so each session has several chats at once.
pub struct Traffic<'a> {
    pub api: &'a Api,
    pub sim: &'a SimProcess,
    pub probe: &'a Probe,
    /// Login tokens of the sending sessions.
    pub senders: &'a [String],
    /// Phone numbers of the recipients.
    pub recipients: &'a [String],
}

impl Traffic<'_> {
    fn route(&self, n: usize) -> (String, String) {
        let sender = &self.senders[n % self.senders.len()];
        let recipient = &self.recipients[(n / self.senders.len()) % self.recipients.len()];
        (sender.clone(), recipient.clone())
    }
}

/// What one send phase measured.
pub struct SendFigures {
    pub offered: usize,
    /// Requests answered 202.
    pub accepted: usize,
    pub accepted_per_s: f64,
    /// Accepted messages the recipients decrypted.
    pub decrypted: usize,
    /// Decrypted messages per second, from the first request to the last decrypt.
    pub decrypted_per_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub usage: Usage,
}

impl SendFigures {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "accepted_per_s": self.accepted_per_s,
            "decrypted_per_s": self.decrypted_per_s,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
        })
    }

    fn print(&self) {
        println!(
            "  offered {}, accepted {} ({:.0}/s), decrypted by recipients {} ({:.0}/s); HTTP -> decrypted p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.offered,
            self.accepted,
            self.accepted_per_s,
            self.decrypted,
            self.decrypted_per_s,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.latency_max_ms
        );
        println!("{}", self.usage.report());
    }
}

/// `(text, sent at in Unix ms, answered 202)` of one request.
type Request = (String, f64, bool);

/// `messages` texts offered at once, `in_flight` requests at a time.
pub async fn burst(
    traffic: &Traffic<'_>,
    phase: &str,
    messages: usize,
    in_flight: usize,
) -> SendFigures {
    let baseline = decrypted_so_far(traffic).await;
    let usage = traffic.probe.start(phase).await;
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let started = Instant::now();
    let mut requests = Vec::with_capacity(messages);
    for n in 0..messages {
        let (token, to) = traffic.route(n);
        let api = traffic.api.clone();
        let text = format!("{phase} {n}");
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        requests.push(tokio::spawn(async move {
            let sent_at = now_ms();
            let accepted = api.send(&token, &to, &text).await == 202;
            drop(permit);
            (text, sent_at, accepted)
        }));
    }
    let answered = collect(requests).await;
    let accepted_in = started.elapsed();
    finish(traffic, phase, baseline, answered, accepted_in, usage).await
}

/// Texts offered at `rate` per second for `duration`, each at its time whether or not the
/// ones before it were answered (an open loop, as independent users behave).
pub async fn steady(
    traffic: &Traffic<'_>,
    phase: &str,
    rate: f64,
    duration: Duration,
) -> SendFigures {
    let messages = (rate * duration.as_secs_f64()).round() as usize;
    let baseline = decrypted_so_far(traffic).await;
    let usage = traffic.probe.start(phase).await;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    // A late tick is made up for at once, so the average rate holds.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = Vec::with_capacity(messages);
    for n in 0..messages {
        ticks.tick().await;
        let (token, to) = traffic.route(n);
        let api = traffic.api.clone();
        let text = format!("{phase} {n}");
        requests.push(tokio::spawn(async move {
            let sent_at = now_ms();
            let accepted = api.send(&token, &to, &text).await == 202;
            (text, sent_at, accepted)
        }));
    }
    let offered_in = started.elapsed();
    let answered = collect(requests).await;
    println!(
        "  offered {messages} at {:.0} messages/s (scheduled {rate:.0}/s)",
        messages as f64 / offered_in.as_secs_f64()
    );
    let accepted_in = started.elapsed();
    finish(traffic, phase, baseline, answered, accepted_in, usage).await
}

async fn collect(requests: Vec<tokio::task::JoinHandle<Request>>) -> Vec<Request> {
    let mut answered = Vec::with_capacity(requests.len());
    for request in requests {
        answered.push(request.await.expect("a request task"));
    }
    answered
}

/// Waits until the recipients decrypted every accepted message (or stalled), then reads
/// their message lists for the figures.
async fn finish(
    traffic: &Traffic<'_>,
    phase: &str,
    baseline: usize,
    answered: Vec<Request>,
    accepted_in: Duration,
    usage: crate::usage::Running,
) -> SendFigures {
    let sent: HashMap<String, f64> = answered
        .iter()
        .filter(|(_, _, accepted)| *accepted)
        .map(|(text, at, _)| (text.clone(), *at))
        .collect();
    let prefix = format!("{phase} ");
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    // While waiting, the simulator's counter of what recipients kept (one request instead of
    // one per recipient); the message lists, read once at the end, are what is counted.
    loop {
        let decrypted = decrypted_so_far(traffic).await.saturating_sub(baseline);
        if decrypted >= sent.len() {
            break;
        }
        if decrypted > last_count {
            last_count = decrypted;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            eprintln!(
                "  {phase}: recipients decrypted nothing new for {STALL:?}; {decrypted} of {}",
                sent.len()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage = usage.finish().await;
    let mut received: HashMap<String, f64> = HashMap::new();
    for recipient in traffic.recipients {
        for (text, at) in traffic.sim.texts(recipient).await {
            if text.starts_with(&prefix) {
                // A repeat would be a duplicate delivery; the first decrypt is the one timed.
                let entry = received.entry(text).or_insert(at);
                *entry = entry.min(at);
            }
        }
    }
    let mut latencies: Vec<f64> = received
        .iter()
        .filter_map(|(text, at)| Some(at - sent.get(text)?))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let first_sent = sent.values().copied().fold(f64::INFINITY, f64::min);
    let last_decrypted = received.values().copied().fold(0.0, f64::max);
    let delivering = ((last_decrypted - first_sent) / 1000.0).max(f64::EPSILON);
    let figures = SendFigures {
        offered: answered.len(),
        accepted: sent.len(),
        accepted_per_s: sent.len() as f64 / accepted_in.as_secs_f64(),
        decrypted: latencies.len(),
        decrypted_per_s: latencies.len() as f64 / delivering,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        latency_max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        usage,
    };
    figures.print();
    figures
}

/// Message copies all recipients decrypted and kept so far.
async fn decrypted_so_far(traffic: &Traffic<'_>) -> usize {
    traffic.sim.stats().await.decrypted_by_recipients as usize
}
