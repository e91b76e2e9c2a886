//! `/ws`: the live feed ([`super::live`]) over a plain websocket.
//!
//! The client has [`AUTH_DEADLINE`] to send `{"type":"authenticate","token":JWT or API key}`;
//! it is then sent `authenticated`, the catch-up and its events as JSON text frames (see
//! [`super::live`]), each with a `cursor`; reconnecting with `"since": <cursor>` sends what it
//! missed. A client too slow to keep up, or that stops answering pings, is disconnected rather
//! than allowed to hold resources.
//!
//! Close codes: 4000 not authenticated in time, 4001 authentication failed, 4002 token expired,
//! 4003 token or API key revoked (password changed or reset, key revoked), 4004 account
//! disabled or deleted, 4005 role changed, 4008 too slow, 4009 no answer to pings, 4029 too
//! many sockets for the account, 1009 message too big, 1001 the node is shutting down
//! (reconnect: another node answers).

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use warp::{
    Filter, Rejection, Reply,
    filters::ws::{Message, WebSocket},
};

use super::{
    error::{ApiError, ErrorBody},
    filters::{client_ip, with_state},
    live::{
        AUTH_DEADLINE, CLOSE_AUTH_FAILED, CLOSE_AUTH_TIMEOUT, CLOSE_PING_TIMEOUT, CLOSE_TOO_BIG,
        Close, MAX_CLIENT_MESSAGE, Pending, sleep_until_opt,
    },
    routing::Route,
};
use crate::state::AppState;

/// How long a closed socket waits for the client's close answer.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Authenticate {
        token: String,
        /// The last `cursor` the client saw, when it reconnects.
        #[serde(default)]
        since: Option<DateTime<Utc>>,
    },
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![Route::new::<__path_upgrade>(|at| {
        at.and(upgrade(state.clone()))
            .map(Reply::into_response)
            .boxed()
    })]
}

/// Live events (websocket)
///
/// Upgrade to a websocket, then send `{"type":"authenticate","token":JWT or API key}` within
/// 5 s; the socket then receives the account's events (`snapshot`, `qr_code`, `pair_code`,
/// `whatsapp_connected`, `whatsapp_disconnected`, `message_status`, `message_received`,
/// `session_state`), each with
/// a `cursor`; reconnecting with `"since": <cursor>` sends what was missed.
#[utoipa::path(get, path = "/ws", tag = "events", operation_id = "websocket",
    responses(
        (status = 101, description = "Switched to the websocket protocol"),
        (status = 400, description = "Not a websocket upgrade request", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many sockets from this address", body = ErrorBody),
    ))]
fn upgrade(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    client_ip(state.trust_forwarded_for)
        .and(with_state(state))
        .and_then(|ip: IpAddr, state: Arc<AppState>| async move {
            // Refuse before upgrading, so the client sees a plain 429 it can back off from.
            if state.ws_by_ip.is_full(&ip) {
                return Err(warp::reject::custom(ApiError::TooManyRequests(
                    Duration::from_secs(10),
                )));
            }
            Ok((ip, state))
        })
        .untuple_one()
        .and(warp::ws())
        .map(|ip: IpAddr, state: Arc<AppState>, ws: warp::ws::Ws| {
            ws.max_message_size(MAX_CLIENT_MESSAGE)
                .on_upgrade(move |socket| serve(socket, state, ip))
        })
}

async fn serve(socket: WebSocket, state: Arc<AppState>, ip: IpAddr) {
    let (mut sink, mut stream) = socket.split();
    let Some(Close(code, reason)) = session(&state, ip, &mut sink, &mut stream).await else {
        return;
    };
    let _ = sink.send(close(code, reason)).await;
    // The closing handshake: give the client a moment to read everything before the close
    // and answer it, instead of cutting the connection under its feet.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(message)) = stream.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

/// One socket's life until it must be closed (and why), or `None` once the client is gone.
async fn session(
    state: &AppState,
    ip: IpAddr,
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Close> {
    // Another socket from this address may have taken the last slot since the route's check.
    let pending = match Pending::new(state, ip) {
        Ok(pending) => pending,
        Err(close) => return Some(close),
    };
    let (credential, since) =
        match tokio::time::timeout(AUTH_DEADLINE, read_authenticate(stream)).await {
            Ok(Ok(authenticate)) => authenticate,
            Ok(Err(close)) => return Some(close),
            Err(_) => return Some(Close(CLOSE_AUTH_TIMEOUT, "authenticate within 5 seconds")),
        };
    let (mut feed, first) = match pending.authenticate(&credential, since).await {
        Ok(opened) => opened,
        Err(close) => return Some(close),
    };
    for value in first {
        sink.send(text(&value)).await.ok()?;
    }

    let limits = state.ws_limits;
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    // When the oldest unanswered ping went out.
    let mut awaiting_pong: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            event = feed.next() => match event {
                Ok(value) => sink.send(text(&value)).await.ok()?,
                Err(close) => return close,
            },
            _ = ping.tick() => {
                sink.send(Message::ping(Vec::new())).await.ok()?;
                awaiting_pong.get_or_insert_with(Instant::now);
            }
            _ = sleep_until_opt(awaiting_pong.map(|sent| sent + limits.pong_timeout)) => {
                return Some(Close(CLOSE_PING_TIMEOUT, "no answer to pings"));
            }
            incoming = stream.next() => match incoming {
                // Any message shows the client is alive; reading is also what answers its pings.
                Some(Ok(message)) if !message.is_close() => awaiting_pong = None,
                Some(Ok(_)) | None => return None,
                Some(Err(error)) => return Some(read_error(&error)),
            },
        }
    }
}

/// Waits for the `authenticate` message: the credential, and the client's `since` if it
/// reconnects.
async fn read_authenticate(
    stream: &mut SplitStream<WebSocket>,
) -> Result<(String, Option<DateTime<Utc>>), Close> {
    while let Some(message) = stream.next().await {
        let message = message.map_err(|error| read_error(&error))?;
        if message.is_ping() || message.is_pong() {
            continue;
        }
        let Ok(text) = message.to_str() else {
            return Err(Close(CLOSE_AUTH_FAILED, "expected a JSON text message"));
        };
        let Ok(ClientMessage::Authenticate { token, since }) = serde_json::from_str(text) else {
            return Err(Close(
                CLOSE_AUTH_FAILED,
                "expected {\"type\":\"authenticate\",\"token\":…,\"since\"?:RFC 3339 time}",
            ));
        };
        return Ok((token, since));
    }
    Err(Close(CLOSE_AUTH_FAILED, "closed before authenticating"))
}

fn read_error(error: &warp::Error) -> Close {
    // tungstenite reports an oversized message as a capacity error; anything else is a
    // broken frame.
    if error.to_string().contains("too long") || error.to_string().contains("Space limit") {
        Close(CLOSE_TOO_BIG, "message too big")
    } else {
        Close(1002, "protocol error")
    }
}

fn text(value: &Value) -> Message {
    Message::text(value.to_string())
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::close_with(code, reason)
}
