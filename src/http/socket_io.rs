//! `/socket.io/`: the live feed ([`super::live`]) for Socket.IO clients (socket.io-client 4,
//! Engine.IO protocol 4), over websocket or HTTP long-polling, served by socketioxide in front
//! of the warp routes.
//!
//! The contract is that of the system botwave replaces: after connecting to the default
//! namespace, the client emits `authenticate` with its login token or API key (the bare
//! string, or `{"token": …, "since"?: cursor}`) within [`AUTH_DEADLINE`]. It is answered
//! `authenticated`, then gets the same events as `/ws` with the same payloads, the event name
//! being the payload's `type` (`qr_code`, `whatsapp_connected`, `whatsapp_disconnected`,
//! `message_status`, `message_received`, `session_state`, …). A bad credential is answered an
//! `unauthorized` event (`{"code", "message"}`) and the socket is disconnected; so is one
//! whose token expires or is revoked later. Any other end (too slow, node stopping) is an
//! `error` event with the same shape, then the disconnect.
//!
//! Long-polling sends every request of one client to the node holding its Engine.IO session:
//! behind a load balancer, pin a client to one node (see `config/nginx-botwave-cluster.conf`).

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use socketioxide::{
    SocketIo,
    extract::{Data, SocketRef},
    service::SocketIoService,
    socket::DisconnectReason,
};
use tokio::sync::{Notify, mpsc};

use super::{
    filters::client_ip_of,
    live::{
        AUTH_DEADLINE, CLOSE_AUTH_FAILED, CLOSE_AUTH_TIMEOUT, Close, MAX_CLIENT_MESSAGE, Pending,
    },
    server::ClientAddr,
};
use crate::state::AppState;

/// Where Socket.IO is served (socket.io-client's default `path`).
pub const PATH: &str = "/socket.io";

/// Events queued for one client before it counts as too slow and is disconnected.
const CLIENT_BUFFER: usize = 256;

/// What `authenticate` carries.
#[derive(Deserialize)]
#[serde(untagged)]
enum Authenticate {
    Token(String),
    Object {
        token: String,
        #[serde(default)]
        since: Option<DateTime<Utc>>,
    },
}

/// `inner` (the warp routes) with Socket.IO answered in front of it at [`PATH`].
pub fn service<S: Clone>(inner: S, state: Arc<AppState>) -> SocketIoService<S> {
    let limits = state.ws_limits;
    let (service, io) = SocketIo::builder()
        .req_path(PATH)
        .ping_interval(limits.ping_interval)
        .ping_timeout(limits.pong_timeout)
        .connect_timeout(AUTH_DEADLINE)
        .max_payload(MAX_CLIENT_MESSAGE as u64)
        .ws_max_message_size(MAX_CLIENT_MESSAGE)
        .max_buffer_size(CLIENT_BUFFER)
        .build_with_inner_svc(inner);
    io.ns("/", move |socket: SocketRef| {
        let state = state.clone();
        async move { connected(socket, state) }
    });
    service
}

/// A client joined the default namespace: its feed runs in a task of its own until the
/// client leaves or the feed ends.
fn connected(socket: SocketRef, state: Arc<AppState>) {
    let ip = {
        let parts = socket.req_parts();
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok());
        client_ip_of(
            state.trust_forwarded_for,
            parts.extensions.get::<ClientAddr>().copied(),
            forwarded,
        )
    };
    let (authenticate_tx, authenticate_rx) = mpsc::channel(1);
    socket.on("authenticate", async move |Data::<Value>(data)| {
        // Only the first one counts; a second while the first is checked is ignored.
        let _ = authenticate_tx.try_send(data);
    });
    // A stored permit: the task sees the client leave even if it looks only afterwards.
    let gone = Arc::new(Notify::new());
    let left = gone.clone();
    socket.on_disconnect(move |_: DisconnectReason| {
        let left = left.clone();
        async move { left.notify_one() }
    });
    tokio::spawn(async move {
        tokio::select! {
            ended = serve(&socket, &state, ip, authenticate_rx) => {
                if let Some(Close(code, reason)) = ended {
                    let event = if Close(code, reason).is_unauthorized() { "unauthorized" } else { "error" };
                    let _ = socket.emit(event, &serde_json::json!({ "code": code, "message": reason }));
                }
                disconnect(socket, state.ws_limits.ping_interval + state.ws_limits.pong_timeout).await;
            }
            _ = gone.notified() => {}
        }
    });
}

/// Disconnects `socket`. A client too slow to read has a full queue, which even the
/// disconnect packet must go through: it is tried again as the queue drains, for up to
/// `within`; by then the heartbeat has ended a client that stopped reading altogether.
async fn disconnect(socket: SocketRef, within: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while socket.connected() {
        match socket.clone().disconnect() {
            Err(socketioxide::SocketError::InternalChannelFull)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ => return,
        }
    }
}

/// One client's feed until it must end (and why), or `None` once the client is gone.
async fn serve(
    socket: &SocketRef,
    state: &AppState,
    ip: IpAddr,
    mut authenticate: mpsc::Receiver<Value>,
) -> Option<Close> {
    let pending = match Pending::new(state, ip) {
        Ok(pending) => pending,
        Err(close) => return Some(close),
    };
    let data = match tokio::time::timeout(AUTH_DEADLINE, authenticate.recv()).await {
        Ok(Some(data)) => data,
        Ok(None) => return None,
        Err(_) => return Some(Close(CLOSE_AUTH_TIMEOUT, "authenticate within 5 seconds")),
    };
    let (credential, since) = match serde_json::from_value(data) {
        Ok(Authenticate::Token(token)) => (token, None),
        Ok(Authenticate::Object { token, since }) => (token, since),
        Err(_) => {
            return Some(Close(
                CLOSE_AUTH_FAILED,
                "emit authenticate with the token, or {\"token\":…,\"since\"?:RFC 3339 time}",
            ));
        }
    };
    let (mut feed, first) = match pending.authenticate(&credential, since).await {
        Ok(opened) => opened,
        Err(close) => return Some(close),
    };
    for value in first {
        if let Err(close) = emit(socket, &value, &feed) {
            return close;
        }
    }
    loop {
        match feed.next().await {
            Ok(value) => {
                if let Err(close) = emit(socket, &value, &feed) {
                    return close;
                }
            }
            Err(close) => return close,
        }
    }
}

/// Emits `value` under its `type`. A client whose queue is full is too slow: it is dropped
/// rather than allowed to hold events back; one that is gone ends the feed quietly.
fn emit(
    socket: &SocketRef,
    value: &Value,
    feed: &super::live::Feed<'_>,
) -> Result<(), Option<Close>> {
    use socketioxide::{SendError, SocketError};
    let event = value["type"].as_str().unwrap_or("event");
    match socket.emit(event, value) {
        Ok(()) => Ok(()),
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(Some(feed.too_slow(1))),
        Err(SendError::Socket(SocketError::Closed)) => Err(None),
        Err(error) => {
            tracing::warn!(%error, "cannot encode a Socket.IO event");
            Ok(())
        }
    }
}
