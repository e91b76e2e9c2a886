//! `/ws`: pushes a user's session events to the browser as they happen.
//!
//! The client has [`AUTH_DEADLINE`] to send `{"type":"authenticate","token":JWT}`; it is then
//! answered `authenticated` and a `snapshot` of its session, and receives its own events
//! (`qr_code`, `pair_code`, `whatsapp_connected`, `whatsapp_disconnected`, `message_status`, and
//! its `session_state`); admins also receive every session's `session_state`. Every frame
//! carries a `cursor`; a client that reconnects with `"since": <cursor>` is sent what it missed
//! (see [`catch_up`]).
//!
//! The socket stays bound to what authorized it: it closes when its token expires, and
//! whenever the account changes (see [`crate::auth::account_watch`]) it re-checks the account
//! before delivering anything else — a password change, reset, disable, deletion or a role
//! change closes it with the code below. A client too slow to keep up, or that stops answering
//! pings, is disconnected rather than allowed to hold resources.
//!
//! Close codes: 4000 not authenticated in time, 4001 authentication failed, 4002 token expired,
//! 4003 token revoked (password changed or reset), 4004 account disabled or deleted, 4005 role
//! changed, 4008 too slow, 4009 no answer to pings, 4029 too many sockets for the account, 1009
//! message too big, 1001 the node is shutting down (reconnect: another node answers).

mod catch_up;

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use botwave_actors::SessionEvent;
use chrono::{DateTime, Utc};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::Instant,
};
use warp::{
    Filter, Rejection, Reply,
    filters::ws::{Message, WebSocket},
};

use super::{
    error::{ApiError, ErrorBody},
    filters::{Caller, client_ip, identify_token, with_state},
    routing::Route,
};
use crate::{domain::Role, state::AppState, users::User};

pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// How long a closed socket waits for the client's close answer.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

const CLOSE_AUTH_TIMEOUT: u16 = 4000;
const CLOSE_AUTH_FAILED: u16 = 4001;
const CLOSE_TOKEN_EXPIRED: u16 = 4002;
const CLOSE_TOKEN_REVOKED: u16 = 4003;
const CLOSE_ACCOUNT_DISABLED: u16 = 4004;
const CLOSE_ROLE_CHANGED: u16 = 4005;
const CLOSE_TOO_SLOW: u16 = 4008;
const CLOSE_PING_TIMEOUT: u16 = 4009;
const CLOSE_TOO_MANY: u16 = 4029;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_GOING_AWAY: u16 = 1001;

/// Websocket limits from `[http]` in the settings.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub max_per_user: usize,
    pub max_per_ip: usize,
}

/// Open sockets per key (account or address), capped; a [`Slot`] is one of them.
pub struct Slots<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

pub struct Slot<'a, K: Eq + Hash + Clone> {
    slots: &'a Slots<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> Slots<K> {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Open sockets over every key.
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    pub fn is_full(&self, key: &K) -> bool {
        self.lock().get(key).copied().unwrap_or(0) >= self.max
    }

    /// A slot for `key`, or `None` when `key` already has the maximum open.
    pub fn take(&self, key: K) -> Option<Slot<'_, K>> {
        let mut open = self.lock();
        let count = open.entry(key.clone()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { slots: self, key })
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<'_, K> {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

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

/// Why a socket is closed, with its close code and reason.
struct Close(u16, &'static str);

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![Route::new::<__path_upgrade>(|at| {
        at.and(upgrade(state.clone()))
            .map(Reply::into_response)
            .boxed()
    })]
}

/// Live events (websocket)
///
/// Upgrade to a websocket, then send `{"type":"authenticate","token":JWT}` within 5 s; the
/// socket then receives the account's events (`snapshot`, `qr_code`, `pair_code`,
/// `whatsapp_connected`, `whatsapp_disconnected`, `message_status`, `session_state`), each with
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
    let Some(_address_slot) = state.ws_by_ip.take(ip) else {
        return Some(Close(CLOSE_TOO_MANY, "too many sockets"));
    };
    // Subscribe before authenticating so that no change that revokes the token being checked
    // is missed. Events are subscribed to once it is known whose they are, before the
    // snapshot is read: every later change is in the snapshot or arrives live.
    let mut account_changes = state.accounts.subscribe();
    let mut stopping = state.stopping.subscribe();

    let (
        Authenticated {
            token,
            caller,
            expires_at,
        },
        since,
    ) = match tokio::time::timeout(AUTH_DEADLINE, authenticate(state, stream)).await {
        Ok(Ok(authenticated)) => authenticated,
        Ok(Err(close)) => return Some(close),
        Err(_) => return Some(Close(CLOSE_AUTH_TIMEOUT, "authenticate within 5 seconds")),
    };
    let Some(_account_slot) = state.ws_by_user.take(caller.user.id) else {
        return Some(Close(CLOSE_TOO_MANY, "too many sockets for this account"));
    };
    let mut events = state.events.subscribe_user(caller.user.id);
    // Admins also watch every session's state; their own arrive on their own channel.
    let mut all_states = (caller.user.role == Role::Admin).then(|| state.events.subscribe_states());
    let hello = json!({
        "type": "authenticated",
        "user": { "id": caller.user.id, "email": caller.user.email, "role": caller.user.role },
        "expires_at": expires_at,
    });
    sink.send(frame(hello)).await.ok()?;
    let (missed, mut replayed) = catch_up::catch_up(state, &caller, since).await;
    for missed in missed {
        sink.send(frame(missed)).await.ok()?;
    }
    let user = caller.user;

    let limits = state.ws_limits;
    let expiry = Instant::now() + until(expires_at);
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    // When the oldest unanswered ping went out.
    let mut awaiting_pong: Option<Instant> = None;
    loop {
        tokio::select! {
            // Authorization first: once the account changed, nothing more is delivered until
            // it has been re-checked.
            biased;
            _ = tokio::time::sleep_until(expiry) => {
                return Some(Close(CLOSE_TOKEN_EXPIRED, "token_expired"));
            }
            _ = node_stopping(&mut stopping) => {
                return Some(Close(CLOSE_GOING_AWAY, "node shutting down; reconnect"));
            }
            change = account_changes.next() => match change {
                Some(change) if change.concerns(user.id) => {
                    if let Err(close) = recheck(state, &token, &user).await {
                        return Some(close);
                    }
                }
                Some(_) => {}
                None => return None,
            },
            _ = ping.tick() => {
                sink.send(Message::ping(Vec::new())).await.ok()?;
                awaiting_pong.get_or_insert_with(Instant::now);
            }
            _ = sleep_until_opt(awaiting_pong.map(|sent| sent + limits.pong_timeout)) => {
                return Some(Close(CLOSE_PING_TIMEOUT, "no answer to pings"));
            }
            event = events.recv() => match event {
                Ok(SessionEvent::MessageStatus { message_id, status, .. })
                    if replayed.covers(message_id, status) => {}
                Ok(event) => sink.send(frame(render(&event))).await.ok()?,
                Err(RecvError::Lagged(missed)) => return Some(too_slow(&user, missed)),
                Err(RecvError::Closed) => return None,
            },
            event = recv_some(&mut all_states) => match event {
                Ok(event) if event.user_id() != user.id => {
                    sink.send(frame(render(&event))).await.ok()?;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => return Some(too_slow(&user, missed)),
                Err(RecvError::Closed) => return None,
            },
            incoming = stream.next() => match incoming {
                // Any message shows the client is alive; reading is also what answers its pings.
                Some(Ok(message)) if !message.is_close() => awaiting_pong = None,
                Some(Ok(_)) | None => return None,
                Some(Err(error)) => return Some(read_error(&error)),
            },
        }
    }
}

/// A socket's token, who it is, and when it expires.
struct Authenticated {
    token: String,
    caller: Caller,
    expires_at: DateTime<Utc>,
}

/// Waits for the `authenticate` message and checks its token like any API request's; also
/// answers the client's `since`, if it reconnects.
async fn authenticate(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
) -> Result<(Authenticated, Option<DateTime<Utc>>), Close> {
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
        let (caller, expires_at) = identify_token(state, &token)
            .await
            .map_err(|_| Close(CLOSE_AUTH_FAILED, "invalid or expired token"))?;
        let authenticated = Authenticated {
            token,
            caller,
            expires_at,
        };
        return Ok((authenticated, since));
    }
    Err(Close(CLOSE_AUTH_FAILED, "closed before authenticating"))
}

/// Checks the socket's token and account again after the account changed.
async fn recheck(state: &AppState, token: &str, user: &User) -> Result<(), Close> {
    match identify_token(state, token).await {
        Ok((caller, _)) if caller.user.role == user.role => Ok(()),
        Ok(_) => Err(Close(CLOSE_ROLE_CHANGED, "role_changed")),
        Err(ApiError::Unauthorized("token_expired", _)) => {
            Err(Close(CLOSE_TOKEN_EXPIRED, "token_expired"))
        }
        Err(ApiError::Unauthorized("token_revoked", _)) => {
            Err(Close(CLOSE_TOKEN_REVOKED, "token_revoked"))
        }
        Err(ApiError::AccountDisabled) => Err(Close(CLOSE_ACCOUNT_DISABLED, "account_disabled")),
        Err(ApiError::Unauthorized(_, _)) => Err(Close(CLOSE_ACCOUNT_DISABLED, "account_deleted")),
        // The database could not tell: fail closed, the client reconnects.
        Err(_) => Err(Close(1011, "cannot check authorization; reconnect")),
    }
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

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Resolves once the node is stopping.
async fn node_stopping(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            // The node state is gone, which only happens as the process ends.
            return std::future::pending().await;
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The event as the browser gets it; a QR code comes with its image, ready to show.
fn render(event: &SessionEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let (SessionEvent::QrCode { code, .. }, Some(object)) = (event, value.as_object_mut())
        && let Ok(svg) = crate::qr::svg(code)
    {
        object.insert("svg".into(), Value::String(svg));
    }
    value
}

/// A frame for the client, stamped with the `cursor` it reconnects with.
fn frame(mut value: Value) -> Message {
    if let Some(object) = value.as_object_mut() {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        object.insert("cursor".into(), Value::String(now));
    }
    Message::text(value.to_string())
}

/// The next event of a subscription the socket may not have.
async fn recv_some(
    events: &mut Option<broadcast::Receiver<SessionEvent>>,
) -> Result<SessionEvent, RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

fn too_slow(user: &User, missed: u64) -> Close {
    tracing::warn!(user = %user.id, missed, "websocket client too slow, disconnecting");
    Close(CLOSE_TOO_SLOW, "too slow to keep up; reconnect")
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::close_with(code, reason)
}
