//! Simulator settings: where to listen, QR ref lifetimes, receipt timing, limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When simulated phones send delivery and read receipts for messages they received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ReceiptMode {
    /// Delivered after `delivered_ms`, read after `read_ms` (both counted from receipt
    /// of the message; `None` means never).
    Auto {
        delivered_ms: Option<u64>,
        read_ms: Option<u64>,
    },
    /// Only on command (`POST /control/phones/{number}/receipts`).
    Manual,
}

impl Default for ReceiptMode {
    fn default() -> Self {
        ReceiptMode::Auto {
            delivered_ms: Some(50),
            read_ms: Some(150),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to bind; port 0 picks a free port (what tests want).
    pub listen: SocketAddr,
    /// How many QR refs an unpaired connection gets (WhatsApp sends 6).
    pub qr_ref_count: usize,
    /// `None`: the client's own rotation timers rule (60 s for the first ref, 20 s for
    /// the rest, hard-coded in whatsapp-rust). `Some(ttl)`: the server expires each ref
    /// after `ttl` and pushes a fresh `pair-device` with the refs left, so the client
    /// rotates at that pace; after the last one it sends an empty `pair-device`, which
    /// makes the client report `PairingQrCodesExhausted` and disconnect.
    pub qr_ref_ttl: Option<Duration>,
    /// Receipt behaviour of simulated phones; changeable at runtime.
    pub receipts: ReceiptMode,
    /// Extra delay before every stanza the server sends; changeable at runtime.
    pub latency: Duration,
    /// Largest frame accepted from a client; bigger ones close the connection.
    pub max_frame_len: usize,
    /// Time a client gets to complete the Noise handshake.
    pub handshake_timeout: Duration,
    /// Whether the account's phone shares its app-state sync key: once with a freshly
    /// paired companion right after its first login (lets it reach `Connected` at once
    /// instead of after the client's 10 s grace), and again to a companion that asks for
    /// it. Off, the phone shares no key and the server serves no app state (no companion
    /// could decrypt it), so clients connect after their grace without a push name.
    pub share_app_state_key: bool,
    /// How long a link code stays enterable on the phone after the companion's
    /// `companion_hello` (WhatsApp Web and whatsapp-rust count 180 s); a later entry
    /// is refused as expired.
    pub pair_code_ttl: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            qr_ref_count: 6,
            qr_ref_ttl: None,
            receipts: ReceiptMode::default(),
            latency: Duration::ZERO,
            max_frame_len: 4 << 20,
            handshake_timeout: Duration::from_secs(20),
            share_app_state_key: true,
            pair_code_ttl: Duration::from_secs(180),
        }
    }
}
