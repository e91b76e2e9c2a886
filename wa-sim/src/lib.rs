//! botwave's WhatsApp Web server simulator.
//!
//! It speaks the real WhatsApp Web protocol (Noise XX/IK over a websocket, binary
//! stanzas, QR or link-code pairing with ADV signatures, Signal-encrypted
//! messages), so the unmodified `whatsapp-rust` client — built with
//! `danger-skip-cert-chain-verify` — pairs, logs in and messages through it.
//! Simulated phones decrypt what clients send, answer with receipts and send texts
//! of their own. A JSON control API under
//! `/control/` drives it; see the README.
//!
//! ```no_run
//! # async fn demo() -> Result<(), botwave_wa_sim::SimError> {
//! let sim = botwave_wa_sim::Simulator::start(botwave_wa_sim::SimConfig::default()).await?;
//! println!("point the client at {}", sim.ws_url());
//! # Ok(()) }
//! ```

mod account;
mod app_state;
mod config;
mod connection;
mod control;
mod delivery;
mod double_connection;
mod inbox;
mod noise;
mod pair_code;
pub mod phone;
#[cfg(feature = "remote")]
pub mod remote;
mod scan;
mod server;
mod stanza;
mod state;
mod stats;
mod wire;

pub use account::ClientReceipt;
pub use config::{ReceiptMode, SimConfig};
pub use control::{
    CompanionInfo, ConfigUpdate, ConfigView, CreatePhone, ErrorBody, ErrorDetail, ImageContent,
    KickRequest, KickResponse, LocationContent, PairCodeRequest, PhoneInfo, ReceiptRequest,
    ResendRequest, ScanRequest, ScanResponse, SendRequest,
};
pub use delivery::{DeliveryError, SentText};
pub use double_connection::DoubleConnections;
pub use inbox::ReceivedText;
pub use noise::{CertificateError, NoiseRootKey};
pub use pair_code::PairCodeError;
pub use scan::{Paired, ScanError};
pub use server::{SimError, SimHandle, Simulator};
pub use stanza::ReceiptKind;
pub use state::KickKind;
pub use stats::{ConnectionCounts, HandshakeCounts, StatsSnapshot};
