//! The unpaired side of a connection: QR refs (and their server-driven rotation), the
//! pair-success a scan (or an accepted link code) triggers, and checking the client's
//! `pair-device-sign`. Link-code IQs are routed to `link_code`.

use std::collections::VecDeque;

use base64::Engine as _;
use rand::RngExt as _;
use tokio::time::Instant;
use tracing::{info, warn};
use wacore_binary::Node;
use waproto::whatsapp as wa;

use super::ConnError;
use super::session::{Flow, Role, Session};
use crate::phone::CompanionBundle;
use crate::stanza;
use crate::state::{PairingStart, PendingRef, lock};

pub struct Unpaired {
    noise_public: [u8; 32],
    bundle: CompanionBundle,
    push_name: Option<String>,
    /// Refs the client may still show, oldest (on screen) first.
    refs: VecDeque<String>,
    /// When the server retires the ref on screen (only with `qr_ref_ttl`).
    pub rotation_deadline: Option<Instant>,
    awaiting_sign: Option<PairingStart>,
    pair_device_counter: u32,
}

/// A fresh ref: `2@` + random base64 (never a ',', which separates QR fields). Link-code
/// requests get refs of the same kind.
pub(super) fn new_ref() -> String {
    let mut random = [0u8; 24];
    rand::make_rng::<rand::rngs::StdRng>().fill(&mut random[..]);
    format!(
        "2@{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    )
}

impl Unpaired {
    /// The companion's Noise static key, from the handshake.
    pub fn noise_public(&self) -> [u8; 32] {
        self.noise_public
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

impl Session {
    pub async fn start_unpaired(
        &mut self,
        client_static: [u8; 32],
        payload: wa::ClientPayload,
    ) -> Result<super::session::Flow, ConnError> {
        let Some(pairing_data) = payload.device_pairing_data.as_option() else {
            return Ok(Flow::Close);
        };
        let bundle = match CompanionBundle::from_pairing_data(pairing_data) {
            Ok(bundle) => bundle,
            Err(error) => {
                warn!(conn = self.conn.id, %error, "unusable registration payload");
                return Ok(Flow::Close);
            }
        };
        let refs: VecDeque<String> = (0..self.shared.config.qr_ref_count)
            .map(|_| new_ref())
            .collect();
        for reference in &refs {
            self.shared.add_ref(
                reference.clone(),
                PendingRef {
                    conn: self.conn.clone(),
                    noise_public: client_static,
                    expires_at: None,
                },
            );
        }
        let rotation_deadline = self
            .shared
            .config
            .qr_ref_ttl
            .map(|ttl| Instant::now() + ttl);
        let first_refs: Vec<String> = refs.iter().cloned().collect();
        self.role = Role::Unpaired(Box::new(Unpaired {
            noise_public: client_static,
            bundle,
            push_name: payload.push_name.clone(),
            refs,
            rotation_deadline,
            awaiting_sign: None,
            pair_device_counter: 0,
        }));
        self.send_pair_device(&first_refs).await?;
        Ok(Flow::Continue)
    }

    async fn send_pair_device(&mut self, refs: &[String]) -> Result<(), ConnError> {
        let id = match &mut self.role {
            Role::Unpaired(unpaired) => {
                unpaired.pair_device_counter += 1;
                format!("pair-device-{}", unpaired.pair_device_counter)
            }
            _ => return Ok(()),
        };
        self.send(&stanza::pair_device(&id, refs)).await
    }

    /// Server-driven rotation: retire the ref on screen and re-announce the rest. An
    /// empty announcement makes the client report its refs exhausted and disconnect.
    pub async fn rotate_refs(&mut self) -> Result<Flow, ConnError> {
        let Role::Unpaired(unpaired) = &mut self.role else {
            return Ok(Flow::Continue);
        };
        if unpaired.awaiting_sign.is_some() {
            unpaired.rotation_deadline = None;
            return Ok(Flow::Continue);
        }
        if let Some(retired) = unpaired.refs.pop_front() {
            self.shared.expire_ref(&retired, std::time::Instant::now());
        }
        let remaining: Vec<String> = unpaired.refs.iter().cloned().collect();
        unpaired.rotation_deadline = if remaining.is_empty() {
            None
        } else {
            self.shared
                .config
                .qr_ref_ttl
                .map(|ttl| Instant::now() + ttl)
        };
        info!(
            conn = self.conn.id,
            left = remaining.len(),
            "rotating QR refs"
        );
        self.send_pair_device(&remaining).await?;
        Ok(Flow::Continue)
    }

    /// A phone scanned one of this connection's refs.
    pub async fn send_pair_success(&mut self, start: PairingStart) -> Result<Flow, ConnError> {
        let Role::Unpaired(unpaired) = &mut self.role else {
            let _ = start
                .reply
                .send(Err("connection is no longer pairing".into()));
            return Ok(Flow::Continue);
        };
        unpaired.rotation_deadline = None;
        let node = start.node.clone();
        unpaired.awaiting_sign = Some(start);
        self.send(&node).await?;
        Ok(Flow::Continue)
    }

    pub async fn on_unpaired_node(&mut self, node: Node) -> Result<Flow, ConnError> {
        if node.tag != "iq" {
            return Ok(Flow::Continue);
        }
        let id = attr(&node, "id").unwrap_or_default();
        let kind = attr(&node, "type").unwrap_or_default();
        if kind == "set"
            && let Some(reg) = node.get_optional_child("link_code_companion_reg")
        {
            return self.on_link_code_iq(&id, reg).await;
        }
        match kind.as_str() {
            "result" | "error" => self.on_pairing_response(&id, &kind, &node).await,
            // Keepalives and anything else the client asks before pairing.
            _ => {
                self.send(&stanza::iq_result(&id, Vec::new())).await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn on_pairing_response(
        &mut self,
        id: &str,
        kind: &str,
        node: &Node,
    ) -> Result<Flow, ConnError> {
        let Role::Unpaired(unpaired) = &mut self.role else {
            return Ok(Flow::Continue);
        };
        let is_sign_reply = unpaired
            .awaiting_sign
            .as_ref()
            .is_some_and(|start| start.iq_id == id);
        if !is_sign_reply {
            // The client's ack of a pair-device IQ.
            return Ok(Flow::Continue);
        }
        let Some(start) = unpaired.awaiting_sign.take() else {
            return Ok(Flow::Continue);
        };
        let device = start.device.clone();
        let account = self.shared.account(&device.number);
        let outcome = match (kind, account) {
            ("result", Some(account)) => {
                let signed = node
                    .get_optional_child("pair-device-sign")
                    .and_then(|sign| sign.get_optional_child("device-identity"))
                    .and_then(|identity| match &identity.content {
                        Some(wacore_binary::NodeContent::Bytes(bytes)) => Some(bytes.clone()),
                        _ => None,
                    });
                match signed {
                    Some(signed) => lock(&account)
                        .complete_pairing(device.device, signed, unpaired.bundle.clone())
                        .map_err(|e| e.to_string()),
                    None => {
                        lock(&account).abort_pairing(device.device);
                        Err("pair-device-sign without device-identity".to_string())
                    }
                }
            }
            (_, account) => {
                if let Some(account) = account {
                    lock(&account).abort_pairing(device.device);
                }
                let error = node
                    .get_optional_child("error")
                    .and_then(|e| attr(e, "text"))
                    .unwrap_or_else(|| "client rejected pair-success".into());
                Err(error)
            }
        };
        match outcome {
            Ok(()) => {
                self.shared.stats.pairing();
                info!(
                    conn = self.conn.id,
                    device = %device.jid(),
                    push_name = ?unpaired.push_name,
                    noise = ?&unpaired.noise_public[..4],
                    "paired"
                );
                let _ = start.reply.send(Ok(device.jid()));
                // 515: "reconnect now"; the client comes back with the login payload.
                self.send_final(&stanza::stream_error_code(515)).await
            }
            Err(error) => {
                warn!(conn = self.conn.id, %error, "pairing failed");
                let _ = start.reply.send(Err(error));
                Ok(Flow::Close)
            }
        }
    }
}
