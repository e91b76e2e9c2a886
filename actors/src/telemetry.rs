//! What this node's sessions did, counted as it happens, for the node's metrics: logins,
//! disconnects, restarts, QR codes shown, message status changes and how long messages took
//! from one status to the next. Only events this node published count (not those relayed
//! from other nodes), so summing the nodes of a cluster counts each once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::events::SessionEvent;
use crate::outbox::MessageStatus;

/// Every message status, in the order [`Counts::message_statuses`] lists them.
pub const STATUSES: [MessageStatus; 6] = [
    MessageStatus::Queued,
    MessageStatus::Sending,
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Read,
    MessageStatus::Failed,
];

/// The stretches of a message's way that are timed, in the order [`Counts::send_latency`]
/// lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// From the API accepting it (queued) to WhatsApp taking it (sent).
    AcceptedToSent,
    /// From sent to the recipient's delivery receipt.
    SentToDelivered,
}

impl Stage {
    pub const ALL: [Stage; 2] = [Stage::AcceptedToSent, Stage::SentToDelivered];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AcceptedToSent => "accepted_to_sent",
            Stage::SentToDelivered => "sent_to_delivered",
        }
    }
}

/// Upper bounds of the latency buckets, in seconds: 5 ms to 5 minutes (a message can wait
/// for its session to connect, a receipt for the phone to come online), then the rest.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A latency histogram of fixed buckets, lock-free: sends record into it from many tasks.
#[derive(Default)]
struct Latency {
    /// One count per bucket of [`LATENCY_BUCKETS`], and one for everything above.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn read(&self) -> LatencyCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LatencyCounts {
            buckets: std::array::from_fn(|i| get(&self.buckets[i])),
            count: get(&self.count),
            sum_seconds: get(&self.sum_micros) as f64 / 1e6,
        }
    }
}

/// A reading of one latency histogram: per-bucket (not cumulative) counts, the last one for
/// everything above the largest bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyCounts {
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub count: u64,
    pub sum_seconds: f64,
}

#[derive(Default)]
pub struct Telemetry {
    connects: AtomicU64,
    disconnects: AtomicU64,
    restarts: AtomicU64,
    qr_codes: AtomicU64,
    received: AtomicU64,
    statuses: [AtomicU64; STATUSES.len()],
    latency: [Latency; Stage::ALL.len()],
}

/// A reading of the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub connects: u64,
    pub disconnects: u64,
    pub restarts: u64,
    pub qr_codes: u64,
    /// Messages the linked numbers received from their contacts.
    pub messages_received: u64,
    /// Status changes per status, in [`STATUSES`] order.
    pub message_statuses: [u64; STATUSES.len()],
    /// Latencies per stage, in [`Stage::ALL`] order.
    pub send_latency: [LatencyCounts; Stage::ALL.len()],
}

impl Telemetry {
    /// Counts an event this node published.
    pub(crate) fn published(&self, event: &SessionEvent) {
        let counter = match event {
            SessionEvent::WhatsappConnected { .. } => &self.connects,
            SessionEvent::WhatsappDisconnected { .. } => &self.disconnects,
            SessionEvent::QrCode { .. } => &self.qr_codes,
            SessionEvent::MessageReceived { .. } => &self.received,
            SessionEvent::MessageStatus { status, .. } => {
                let index = STATUSES.iter().position(|s| s == status).unwrap_or(0);
                &self.statuses[index]
            }
            SessionEvent::PairCode { .. }
            | SessionEvent::SessionState { .. }
            | SessionEvent::WebhookPaused { .. } => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A message took `took` over `stage`.
    pub(crate) fn timed(&self, stage: Stage, took: Duration) {
        self.latency[stage as usize].observe(took);
    }

    /// A crashed session is being restarted.
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> Counts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            restarts: get(&self.restarts),
            qr_codes: get(&self.qr_codes),
            messages_received: get(&self.received),
            message_statuses: std::array::from_fn(|i| get(&self.statuses[i])),
            send_latency: std::array::from_fn(|i| self.latency[i].read()),
        }
    }
}
