//! What this node's sessions did, counted as it happens, for the node's metrics: logins,
//! disconnects, restarts, QR codes shown and message status changes. Only events this node
//! published count (not those relayed from other nodes), so summing the nodes of a cluster
//! counts each once.

use std::sync::atomic::{AtomicU64, Ordering};

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

#[derive(Default)]
pub struct Telemetry {
    connects: AtomicU64,
    disconnects: AtomicU64,
    restarts: AtomicU64,
    qr_codes: AtomicU64,
    received: AtomicU64,
    statuses: [AtomicU64; STATUSES.len()],
}

/// A reading of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub connects: u64,
    pub disconnects: u64,
    pub restarts: u64,
    pub qr_codes: u64,
    /// Messages the linked numbers received from their contacts.
    pub messages_received: u64,
    /// Status changes per status, in [`STATUSES`] order.
    pub message_statuses: [u64; STATUSES.len()],
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
        }
    }
}
