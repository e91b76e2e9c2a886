//! The encrypted stanza loop of one connection: decode what the client sends, route
//! it by the connection's role (unpaired or logged in), run commands other tasks
//! queue for this connection, and write replies through the transport cipher.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wacore_binary::{Jid, Node};
use waproto::whatsapp as wa;
use warp::ws::Message;

use super::pairing::Unpaired;
use super::{ConnError, WsSink, WsStream};
use crate::account::{Account, LoginVerdict};
use crate::double_connection::LoggedIn;
use crate::noise::TransportCipher;
use crate::stanza;
use crate::state::{ConnCommand, ConnHandle, DeviceKey, KickKind, Shared, lock};
use crate::wire::{FrameReader, encode_frame};

/// Whether the loop goes on after handling something.
pub enum Flow {
    Continue,
    Close,
}

/// A logged-in companion.
pub struct Online {
    pub device: DeviceKey,
    pub account: Arc<Mutex<Account>>,
    /// Set once `<ib><offline>` went out; it is sent once per connection.
    pub offline_sent: bool,
    /// Counts this connection as logged in for double-connection records until dropped.
    _logged_in: LoggedIn,
}

pub enum Role {
    /// Before the handshake payload is looked at.
    Starting,
    Unpaired(Box<Unpaired>),
    Online(Online),
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub conn: ConnHandle,
    commands: mpsc::UnboundedReceiver<ConnCommand>,
    sink: WsSink,
    stream: WsStream,
    reader: FrameReader,
    transport: TransportCipher,
    pub role: Role,
    /// A terminal stanza went out: give the client a moment to read it and close
    /// the socket itself, so the close cannot overtake the stanza.
    linger: bool,
}

/// How long the server waits for the client to hang up after a terminal stanza.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        conn: ConnHandle,
        commands: mpsc::UnboundedReceiver<ConnCommand>,
        sink: WsSink,
        stream: WsStream,
        reader: FrameReader,
        transport: TransportCipher,
    ) -> Self {
        Self {
            shared,
            conn,
            commands,
            sink,
            stream,
            reader,
            transport,
            role: Role::Starting,
            linger: false,
        }
    }

    pub async fn run(
        mut self,
        client_static: [u8; 32],
        payload: wa::ClientPayload,
    ) -> Result<(), ConnError> {
        let result = self.run_inner(client_static, payload).await;
        // The session is over here, even if the socket lingers for the client to read
        // a terminal stanza: dropping `Online` ends its login.
        if let Role::Online(online) = std::mem::replace(&mut self.role, Role::Starting) {
            self.shared.clear_live(&online.device, self.conn.id);
        }
        if self.linger && result.is_ok() {
            let _ = tokio::time::timeout(LINGER, async {
                while let Some(Ok(message)) = self.stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = self.sink.send(Message::close()).await;
        let _ = self.sink.close().await;
        result
    }

    async fn run_inner(
        &mut self,
        client_static: [u8; 32],
        payload: wa::ClientPayload,
    ) -> Result<(), ConnError> {
        let flow = if payload.device_pairing_data.is_set() {
            self.start_unpaired(client_static, payload).await?
        } else {
            self.start_login(client_static, &payload).await?
        };
        if let Flow::Close = flow {
            return Ok(());
        }
        let stopped = self.shared.stopped();
        tokio::pin!(stopped);
        loop {
            let rotation = self.rotation_deadline();
            let flow = tokio::select! {
                message = self.stream.next() => {
                    let message = message.ok_or(ConnError::Closed)??;
                    if message.is_close() {
                        return Err(ConnError::Closed);
                    }
                    if message.is_text() {
                        return Err(ConnError::TextMessage);
                    }
                    if !message.is_binary() {
                        continue;
                    }
                    self.reader.feed(message.as_bytes());
                    self.drain_frames().await?
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await?,
                    None => Flow::Close,
                },
                () = sleep_until_or_forever(rotation) => self.rotate_refs().await?,
                () = &mut stopped => Flow::Close,
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    fn rotation_deadline(&self) -> Option<Instant> {
        match &self.role {
            Role::Unpaired(unpaired) => unpaired.rotation_deadline,
            _ => None,
        }
    }

    async fn drain_frames(&mut self) -> Result<Flow, ConnError> {
        while let Some(frame) = self.reader.next_frame()? {
            let plaintext = self.transport.open(frame)?;
            let node = decode_node(&plaintext)?;
            if let Flow::Close = self.on_node(node).await? {
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_node(&mut self, node: Node) -> Result<Flow, ConnError> {
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(conn = self.conn.id, node = %wacore::xml::DisplayableNode(&node), "<-");
        }
        match &self.role {
            Role::Starting => Ok(Flow::Close),
            Role::Unpaired(_) => self.on_unpaired_node(node).await,
            Role::Online(_) => self.on_online_node(node).await,
        }
    }

    async fn on_online_node(&mut self, node: Node) -> Result<Flow, ConnError> {
        match node.tag.as_ref() {
            "iq" => self.on_online_iq(node).await,
            "message" => self.on_client_message(node).await,
            "receipt" => self.on_client_receipt(node).await,
            "ack" => self.on_client_ack(node).await,
            // Other acks, presence, chat states, unified_session: nothing to answer.
            other => {
                debug!(conn = self.conn.id, tag = other, "ignored stanza");
                Ok(Flow::Continue)
            }
        }
    }

    async fn on_command(&mut self, command: ConnCommand) -> Result<Flow, ConnError> {
        match command {
            ConnCommand::Send(node) => {
                self.send(&node).await?;
                Ok(Flow::Continue)
            }
            ConnCommand::Kick(kind) => self.kick(kind).await,
            ConnCommand::PairSuccess(start) => self.send_pair_success(*start).await,
        }
    }

    async fn kick(&mut self, kind: KickKind) -> Result<Flow, ConnError> {
        info!(conn = self.conn.id, ?kind, "kicking connection");
        let stanza = match kind {
            KickKind::Drop | KickKind::Failure401 | KickKind::Ban => None,
            KickKind::Replaced => Some(stanza::stream_replaced()),
            KickKind::Logout => Some(stanza::stream_device_removed()),
            KickKind::Restart => Some(stanza::stream_error_code(515)),
        };
        match stanza {
            Some(stanza) => self.send_final(&stanza).await,
            None => Ok(Flow::Close),
        }
    }

    /// Sends a stanza after which the server ends the connection.
    pub async fn send_final(&mut self, node: &Node) -> Result<Flow, ConnError> {
        self.send(node).await?;
        self.linger = true;
        Ok(Flow::Close)
    }

    /// Encrypts and writes one stanza, after the configured latency.
    pub async fn send(&mut self, node: &Node) -> Result<(), ConnError> {
        let latency = self.shared.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(conn = self.conn.id, node = %wacore::xml::DisplayableNode(node), "->");
        }
        let plaintext =
            wacore_binary::marshal(node).map_err(|e| ConnError::Stanza(format!("encode: {e}")))?;
        let sealed = self.transport.seal(&plaintext)?;
        self.sink
            .send(Message::binary(encode_frame(&sealed)?))
            .await?;
        Ok(())
    }

    // ---- login ----

    async fn start_login(
        &mut self,
        client_static: [u8; 32],
        payload: &wa::ClientPayload,
    ) -> Result<Flow, ConnError> {
        let (Some(username), Some(device)) = (payload.username, payload.device) else {
            warn!(conn = self.conn.id, "login payload without username/device");
            self.shared.stats.login_refused();
            return self.send_final(&stanza::failure(401)).await;
        };
        let Ok(device) = u16::try_from(device) else {
            self.shared.stats.login_refused();
            return self.send_final(&stanza::failure(401)).await;
        };
        let key = DeviceKey::new(username.to_string(), device);
        let Some(account) = self.shared.account(&key.number) else {
            info!(conn = self.conn.id, device = %key.jid(), "login of an unknown account");
            self.shared.stats.login_refused();
            return self.send_final(&stanza::failure(401)).await;
        };
        let (verdict, lid) = {
            let mut account = lock(&account);
            // The device's own LID, as pair-success named it: clients store the LID from
            // pair-success and treat a different one here as a change of identity
            // (whatsmeow warns and resets it; whatsapp-rust and Baileys overwrite theirs).
            let lid = Jid::lid_device(account.lid.clone(), device);
            (account.login_verdict(device, &client_static), lid)
        };
        let queued = match verdict {
            LoginVerdict::Accept { queued } => queued,
            LoginVerdict::Refuse(reason) => {
                info!(conn = self.conn.id, device = %key.jid(), reason, "login refused");
                self.shared.stats.login_refused();
                return self.send_final(&stanza::failure(reason)).await;
            }
            LoginVerdict::Ban => {
                info!(conn = self.conn.id, device = %key.jid(), "login answered with a temporary ban");
                self.shared.stats.login_refused();
                return self.send_final(&stanza::temporary_ban(101, 3600)).await;
            }
        };
        if let Some(previous) = self.shared.set_live(key.clone(), self.conn.clone())
            && previous.id != self.conn.id
        {
            // WhatsApp keeps one socket per device: the older one is told it was replaced.
            self.shared.stats.conflict();
            let _ = previous
                .commands
                .send(ConnCommand::Kick(KickKind::Replaced));
        }
        self.shared.stats.login();
        info!(conn = self.conn.id, device = %key.jid(), "logged in");
        let logged_in = LoggedIn::new(self.shared.clone(), key.clone(), self.conn.id);
        self.send(&stanza::success(&lid)).await?;
        self.role = Role::Online(Online {
            device: key,
            account,
            offline_sent: false,
            _logged_in: logged_in,
        });
        // Stanzas queued while the device was away go out with the offline batch.
        for stanza in queued {
            self.send(&stanza).await?;
            self.shared.stats.message_sent_to_client();
        }
        Ok(Flow::Continue)
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Decodes a transport plaintext (flag byte + binary node). The decoder is not ours:
/// a panic on hostile input is turned into an error for this connection only.
fn decode_node(plaintext: &[u8]) -> Result<Node, ConnError> {
    let decoded = std::panic::catch_unwind(|| -> Result<Node, String> {
        let unpacked = wacore_binary::util::unpack(plaintext).map_err(|e| e.to_string())?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked).map_err(|e| e.to_string())?;
        Ok(node.to_owned())
    });
    match decoded {
        Ok(result) => result.map_err(ConnError::Stanza),
        Err(_) => Err(ConnError::Stanza("decoder panicked".into())),
    }
}
