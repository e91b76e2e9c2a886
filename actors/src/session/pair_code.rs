//! Linking by phone number: the session asks its client for a link code (whatsapp-rust's
//! `pair_with_code`), which the user types on the phone instead of scanning the QR
//! code. The client needs its socket up and unpaired for that, which its first QR code
//! shows; a request that comes earlier waits for it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;
use whatsapp_rust::Client;
use whatsapp_rust::pair_code::PairCodeOptions;

use super::WaSessionState;
use crate::error::PairCodeRefusal;

/// How long a code can be typed (WhatsApp Web's 180 s, which whatsapp-rust keeps).
pub fn code_validity() -> std::time::Duration {
    whatsapp_rust::wacore::pair_code::PairCodeUtils::code_validity()
}

/// A link code as the user sees it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PairCode {
    /// 8 characters of `123456789ABCDEFGHJKLMNPQRSTVWXYZ`, as whatsapp-rust returns it.
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

pub type PairCodeReply = RpcReplyPort<Result<PairCode, PairCodeRefusal>>;

/// A request that waits for the client's socket.
pub struct PendingPairCode {
    phone: String,
    reply: PairCodeReply,
}

/// Handles the user's request for a link code for `phone` (digits, international).
pub fn request(state: &mut WaSessionState, phone: String, reply: PairCodeReply) {
    if state.connected || state.paired {
        let _ = reply.send(Err(PairCodeRefusal::AlreadyLinked));
        return;
    }
    if state.pending_pair_code.is_some() {
        let _ = reply.send(Err(PairCodeRefusal::InProgress));
        return;
    }
    match state.client.as_ref() {
        None => {
            let _ = reply.send(Err(PairCodeRefusal::NotRunning));
        }
        Some(client) if state.showing_qr => start(client.client().clone(), phone, reply),
        Some(_) => state.pending_pair_code = Some(PendingPairCode { phone, reply }),
    }
}

/// The client's socket is up and unpaired (it showed a QR code): run a waiting request.
pub fn on_socket_ready(state: &mut WaSessionState) {
    if let (Some(pending), Some(client)) = (state.pending_pair_code.take(), state.client.as_ref()) {
        start(client.client().clone(), pending.phone, pending.reply);
    }
}

/// The session stops or got linked another way: a waiting request gets its answer.
pub fn refuse_pending(state: &mut WaSessionState, why: PairCodeRefusal) {
    if let Some(pending) = state.pending_pair_code.take() {
        let _ = pending.reply.send(Err(why));
    }
}

/// Runs the request off the actor: stage 1 is a PBKDF2 and a server round trip, and
/// the client's events must keep flowing meanwhile.
fn start(client: Arc<Client>, phone: String, reply: PairCodeReply) {
    tokio::spawn(async move {
        // The user asked for a code (again, perhaps for another number): replacing one
        // still on screen is what they want, and the client needs it said explicitly.
        client.cancel_pair_code().await;
        let options = PairCodeOptions {
            phone_number: phone,
            ..Default::default()
        };
        let result = match client.pair_with_code(options).await {
            Ok(code) => Ok(PairCode {
                code,
                expires_at: Utc::now()
                    + chrono::Duration::from_std(code_validity())
                        .unwrap_or(chrono::Duration::seconds(180)),
            }),
            Err(error) if error.lost_the_flow_to_another_request() => {
                Err(PairCodeRefusal::Interrupted)
            }
            Err(error) => Err(PairCodeRefusal::Refused(error.to_string())),
        };
        let _ = reply.send(result);
    });
}
