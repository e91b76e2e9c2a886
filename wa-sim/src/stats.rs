//! Counters the control API reports (`GET /control/stats`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::double_connection::{DoubleConnectionTracker, DoubleConnections};
use crate::noise::HandshakePattern;

#[derive(Default)]
pub struct Stats {
    connections_current: AtomicU64,
    connections_total: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    handshakes_xx: AtomicU64,
    handshakes_ik: AtomicU64,
    handshakes_xx_fallback: AtomicU64,
    conflicts: AtomicU64,
    logins: AtomicU64,
    logins_refused: AtomicU64,
    pairings: AtomicU64,
    messages_decrypted_by_recipients: AtomicU64,
    own_device_copies_decrypted: AtomicU64,
    duplicate_messages: AtomicU64,
    decrypt_failures: AtomicU64,
    messages_sent_to_clients: AtomicU64,
    receipts_sent: AtomicU64,
    protocol_errors: AtomicU64,
    app_state_key_shares: AtomicU64,
    app_state_key_requests: AtomicU64,
    pub double_connections: DoubleConnectionTracker,
}

/// A point-in-time copy of [`Stats`], as JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections: ConnectionCounts,
    pub handshakes: HandshakeCounts,
    /// Logins of a device that already had a live connection (the older one is replaced).
    pub conflicts: u64,
    pub logins: u64,
    pub logins_refused: u64,
    pub pairings: u64,
    /// Message copies recipients' phone devices decrypted and kept (one per device: a
    /// text to a phone with two devices counts 2). Every text among them is in the phone's
    /// message list.
    pub messages_decrypted_by_recipients: u64,
    /// The copies clients send their own phone of what they send (`deviceSentMessage`),
    /// decrypted there and not kept as received.
    pub own_device_copies_decrypted: u64,
    /// Copies recipients' phone devices decrypted but did not keep again: a message id the
    /// device already had from that sender (the sum of the phones' `duplicates`).
    pub duplicate_messages: u64,
    pub decrypt_failures: u64,
    pub messages_sent_to_clients: u64,
    pub receipts_sent: u64,
    /// Connections closed for malformed frames, bad ciphertext or garbage.
    pub protocol_errors: u64,
    /// App-state key shares the phones sent their companions: one after each linking (at
    /// the companion's first login), plus one per key request answered.
    #[serde(default)]
    pub app_state_key_shares: u64,
    /// `appStateSyncKeyRequest`s companions sent their phones (a companion asks when a
    /// patch names a key it does not have).
    #[serde(default)]
    pub app_state_key_requests: u64,
    /// Over all devices: `double_connections` and `longest_double_connection_ms`.
    #[serde(flatten)]
    pub double_connections: DoubleConnections,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub current: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HandshakeCounts {
    pub ok: u64,
    pub failed: u64,
    /// Completed full handshakes (first connections, clients without a cached chain).
    pub xx: u64,
    /// Completed IK resumptions with the current static key.
    pub ik: u64,
    /// IK attempts against a stale static key, completed as XXfallback.
    pub xx_fallback: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn connection_opened(&self) {
        bump(&self.connections_current);
        bump(&self.connections_total);
    }
    pub fn connection_closed(&self) {
        self.connections_current.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn handshake_ok(&self, pattern: HandshakePattern) {
        bump(&self.handshakes_ok);
        bump(match pattern {
            HandshakePattern::Xx => &self.handshakes_xx,
            HandshakePattern::Ik => &self.handshakes_ik,
            HandshakePattern::XxFallback => &self.handshakes_xx_fallback,
        });
    }
    pub fn handshake_failed(&self) {
        bump(&self.handshakes_failed);
    }
    pub fn conflict(&self) {
        bump(&self.conflicts);
    }
    pub fn login(&self) {
        bump(&self.logins);
    }
    pub fn login_refused(&self) {
        bump(&self.logins_refused);
    }
    pub fn pairing(&self) {
        bump(&self.pairings);
    }
    pub fn message_decrypted_by_recipient(&self) {
        bump(&self.messages_decrypted_by_recipients);
    }
    pub fn own_device_copy_decrypted(&self) {
        bump(&self.own_device_copies_decrypted);
    }
    pub fn duplicate_message(&self) {
        bump(&self.duplicate_messages);
    }
    pub fn decrypt_failure(&self) {
        bump(&self.decrypt_failures);
    }
    pub fn message_sent_to_client(&self) {
        bump(&self.messages_sent_to_clients);
    }
    pub fn receipt_sent(&self) {
        bump(&self.receipts_sent);
    }
    pub fn protocol_error(&self) {
        bump(&self.protocol_errors);
    }
    pub fn app_state_key_share(&self) {
        bump(&self.app_state_key_shares);
    }
    pub fn app_state_key_request(&self) {
        bump(&self.app_state_key_requests);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections: ConnectionCounts {
                current: get(&self.connections_current),
                total: get(&self.connections_total),
            },
            handshakes: HandshakeCounts {
                ok: get(&self.handshakes_ok),
                failed: get(&self.handshakes_failed),
                xx: get(&self.handshakes_xx),
                ik: get(&self.handshakes_ik),
                xx_fallback: get(&self.handshakes_xx_fallback),
            },
            conflicts: get(&self.conflicts),
            logins: get(&self.logins),
            logins_refused: get(&self.logins_refused),
            pairings: get(&self.pairings),
            messages_decrypted_by_recipients: get(&self.messages_decrypted_by_recipients),
            own_device_copies_decrypted: get(&self.own_device_copies_decrypted),
            duplicate_messages: get(&self.duplicate_messages),
            decrypt_failures: get(&self.decrypt_failures),
            messages_sent_to_clients: get(&self.messages_sent_to_clients),
            receipts_sent: get(&self.receipts_sent),
            protocol_errors: get(&self.protocol_errors),
            app_state_key_shares: get(&self.app_state_key_shares),
            app_state_key_requests: get(&self.app_state_key_requests),
            double_connections: self.double_connections.total(),
        }
    }
}
