//! A subscriber's live events, whatever carries them: `/ws` (plain websockets, [`super::ws`])
//! and `/socket.io/` (Socket.IO, [`super::socket_io`]) are two transports of this one feed.
//!
//! A feed is opened with a login token or an API key. It starts with `authenticated` and the
//! catch-up (a `snapshot` of the session and, for a client that reconnects with `since`, what
//! it missed: see [`catch_up`]), then delivers the account's own events (`qr_code`,
//! `pair_code`, `whatsapp_connected`, `whatsapp_disconnected`, `message_status`,
//! `message_received`, its `session_state`); admins also get every session's `session_state`.
//! Every event carries a `cursor` (when it was delivered) to reconnect with.
//!
//! The feed stays bound to what authorized it: it ends when its token expires, and whenever
//! the account changes (see [`crate::auth::account_watch`]: a password change or reset, a
//! disable, a deletion, a role change, a revoked API key or a change of its scopes) it
//! re-checks the credential before delivering anything else. An API key needs the
//! `session:read` scope. A subscriber too slow to keep up is ended rather than allowed to hold
//! events back.

pub mod catch_up;

use std::{collections::HashMap, hash::Hash, net::IpAddr, sync::Mutex, time::Duration};

use botwave_actors::SessionEvent;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::{
    sync::{
        broadcast::{self, error::RecvError},
        watch,
    },
    time::Instant,
};
use uuid::Uuid;

use super::{
    error::ApiError,
    filters::{Caller, identify_key, identify_token},
};
use crate::{
    auth::{account_watch::AccountChanges, api_key, scope::Scope},
    domain::Role,
    state::AppState,
    users::User,
};

/// How long a new connection has to authenticate.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(5);
/// The largest message a client may send (its `authenticate`).
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Why a feed ends, as a websocket close code and reason; Socket.IO sends the same pair in
/// its `unauthorized` or `error` event before disconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close(pub u16, pub &'static str);

pub const CLOSE_AUTH_TIMEOUT: u16 = 4000;
pub const CLOSE_AUTH_FAILED: u16 = 4001;
pub const CLOSE_TOKEN_EXPIRED: u16 = 4002;
pub const CLOSE_TOKEN_REVOKED: u16 = 4003;
pub const CLOSE_ACCOUNT_DISABLED: u16 = 4004;
pub const CLOSE_ROLE_CHANGED: u16 = 4005;
pub const CLOSE_TOO_SLOW: u16 = 4008;
pub const CLOSE_PING_TIMEOUT: u16 = 4009;
pub const CLOSE_TOO_MANY: u16 = 4029;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_CANNOT_CHECK: u16 = 1011;

impl Close {
    /// Whether the feed ended because its credential is not (or no longer) good.
    pub fn is_unauthorized(self) -> bool {
        (CLOSE_AUTH_TIMEOUT..=CLOSE_ROLE_CHANGED).contains(&self.0)
    }
}

/// Limits on live connections, from `[http]` in the settings.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub max_per_user: usize,
    pub max_per_ip: usize,
}

/// Open connections per key (account or address), capped; a [`Slot`] is one of them.
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

    /// Open connections over every key.
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

/// A connection that has not authenticated yet. It already listens for account changes and
/// for the node stopping, so that no change revoking the credential being checked is missed.
pub struct Pending<'a> {
    state: &'a AppState,
    address_slot: Slot<'a, IpAddr>,
    account_changes: AccountChanges,
    stopping: watch::Receiver<bool>,
}

/// What a feed was opened with, to check it again.
enum Credential {
    Token(String),
    ApiKey(String),
}

/// An authenticated feed of one account's events.
pub struct Feed<'a> {
    state: &'a AppState,
    user: User,
    credential: Credential,
    _address_slot: Slot<'a, IpAddr>,
    _account_slot: Slot<'a, Uuid>,
    account_changes: AccountChanges,
    stopping: watch::Receiver<bool>,
    events: broadcast::Receiver<SessionEvent>,
    all_states: Option<broadcast::Receiver<SessionEvent>>,
    replayed: catch_up::Replayed,
    expiry: Option<Instant>,
    /// The account changed and has not been re-checked since: nothing is delivered until it
    /// has (kept across a cancelled [`Feed::next`], so the re-check is never skipped).
    recheck_due: bool,
}

impl<'a> Pending<'a> {
    /// A new connection from `ip`, or why it is refused (too many from that address).
    pub fn new(state: &'a AppState, ip: IpAddr) -> Result<Self, Close> {
        let address_slot = state
            .ws_by_ip
            .take(ip)
            .ok_or(Close(CLOSE_TOO_MANY, "too many sockets"))?;
        Ok(Self {
            state,
            address_slot,
            account_changes: state.accounts.subscribe(),
            stopping: state.stopping.subscribe(),
        })
    }

    /// Checks `credential` (a login token or an API key) like any API request's and opens the
    /// feed. Returns it with what to send first: `authenticated`, then the catch-up.
    pub async fn authenticate(
        self,
        credential: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Feed<'a>, Vec<Value>), Close> {
        let state = self.state;
        let (caller, credential, expires_at) =
            identify(state, credential)
                .await
                .map_err(|error| match error {
                    ApiError::InsufficientScope(_) => Close(
                        CLOSE_AUTH_FAILED,
                        "insufficient_scope: the key lacks session:read",
                    ),
                    _ => Close(CLOSE_AUTH_FAILED, "invalid or expired token"),
                })?;
        let account_slot = state
            .ws_by_user
            .take(caller.user.id)
            .ok_or(Close(CLOSE_TOO_MANY, "too many sockets for this account"))?;
        // Subscribed before the snapshot is read: every later change is in the snapshot or
        // arrives live.
        let events = state.events.subscribe_user(caller.user.id);
        let all_states = (caller.user.role == Role::Admin).then(|| state.events.subscribe_states());
        let hello = json!({
            "type": "authenticated",
            "user": { "id": caller.user.id, "email": caller.user.email, "role": caller.user.role },
            "expires_at": expires_at,
        });
        let (missed, replayed) = catch_up::catch_up(state, &caller, since).await;
        let first = std::iter::once(hello).chain(missed).map(stamp).collect();
        let feed = Feed {
            state,
            user: caller.user,
            credential,
            _address_slot: self.address_slot,
            _account_slot: account_slot,
            account_changes: self.account_changes,
            stopping: self.stopping,
            events,
            all_states,
            replayed,
            expiry: expires_at.map(|at| Instant::now() + until(at)),
            recheck_due: false,
        };
        Ok((feed, first))
    }
}

impl Feed<'_> {
    /// The next event to deliver, stamped with its `cursor`; or why the feed ends (`None`: the
    /// node's event source is gone, as the process ends). Cancel-safe.
    pub async fn next(&mut self) -> Result<Value, Option<Close>> {
        loop {
            if self.recheck_due {
                self.recheck().await.map_err(Some)?;
                self.recheck_due = false;
            }
            tokio::select! {
                // Authorization first: once the account changed, nothing more is delivered
                // until it has been re-checked.
                biased;
                _ = sleep_until_opt(self.expiry) => {
                    return Err(Some(Close(CLOSE_TOKEN_EXPIRED, "token_expired")));
                }
                _ = node_stopping(&mut self.stopping) => {
                    return Err(Some(Close(CLOSE_GOING_AWAY, "node shutting down; reconnect")));
                }
                change = self.account_changes.next() => match change {
                    Some(change) if change.concerns(self.user.id) => self.recheck_due = true,
                    Some(_) => {}
                    None => return Err(None),
                },
                event = self.events.recv() => match event {
                    Ok(SessionEvent::MessageStatus { message_id, status, .. })
                        if self.replayed.covers(message_id, status) => {}
                    Ok(event) => return Ok(stamp(render(&event))),
                    Err(RecvError::Lagged(missed)) => return Err(Some(self.too_slow(missed))),
                    Err(RecvError::Closed) => return Err(None),
                },
                event = recv_some(&mut self.all_states) => match event {
                    Ok(event) if event.user_id() != self.user.id => {
                        return Ok(stamp(render(&event)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => return Err(Some(self.too_slow(missed))),
                    Err(RecvError::Closed) => return Err(None),
                },
            }
        }
    }

    /// The account the feed belongs to.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// Ends a feed whose subscriber could not keep up.
    pub fn too_slow(&self, missed: u64) -> Close {
        tracing::warn!(user = %self.user.id, missed, "live client too slow, disconnecting");
        Close(CLOSE_TOO_SLOW, "too slow to keep up; reconnect")
    }

    /// Checks the feed's credential and account again after the account changed.
    async fn recheck(&self) -> Result<(), Close> {
        let checked = match &self.credential {
            Credential::Token(token) => identify_token(self.state, token)
                .await
                .map(|(caller, _)| caller),
            Credential::ApiKey(key) => identify_feed_key(self.state, key).await,
        };
        match checked {
            Ok(caller) if caller.user.role == self.user.role => Ok(()),
            Ok(_) => Err(Close(CLOSE_ROLE_CHANGED, "role_changed")),
            Err(ApiError::Unauthorized("token_expired", _)) => {
                Err(Close(CLOSE_TOKEN_EXPIRED, "token_expired"))
            }
            Err(ApiError::Unauthorized("token_revoked", _)) => {
                Err(Close(CLOSE_TOKEN_REVOKED, "token_revoked"))
            }
            Err(ApiError::Unauthorized("invalid_api_key", _)) => {
                Err(Close(CLOSE_TOKEN_REVOKED, "api_key_revoked"))
            }
            Err(ApiError::InsufficientScope(_)) => {
                Err(Close(CLOSE_TOKEN_REVOKED, "insufficient_scope"))
            }
            Err(ApiError::AccountDisabled) => {
                Err(Close(CLOSE_ACCOUNT_DISABLED, "account_disabled"))
            }
            Err(ApiError::Unauthorized(_, _)) => {
                Err(Close(CLOSE_ACCOUNT_DISABLED, "account_deleted"))
            }
            // The database could not tell: fail closed, the client reconnects.
            Err(_) => Err(Close(
                CLOSE_CANNOT_CHECK,
                "cannot check authorization; reconnect",
            )),
        }
    }
}

/// Who `credential` is: an API key, or a login token (with its expiry).
async fn identify(
    state: &AppState,
    credential: &str,
) -> Result<(Caller, Credential, Option<DateTime<Utc>>), ApiError> {
    let credential = credential.trim();
    if api_key::looks_like_key(credential) {
        let caller = identify_feed_key(state, credential).await?;
        return Ok((caller, Credential::ApiKey(credential.to_owned()), None));
    }
    let (caller, expires_at) = identify_token(state, credential).await?;
    let token = Credential::Token(credential.to_owned());
    Ok((caller, token, Some(expires_at)))
}

/// The owner of API key `key`, which must have the `session:read` scope: the feed shows the
/// session (QR codes, its state) and the statuses of its messages.
async fn identify_feed_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let caller = identify_key(state, key).await?;
    caller.require(Scope::SessionRead)?;
    Ok(caller)
}

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Resolves once the node is stopping.
async fn node_stopping(stopping: &mut watch::Receiver<bool>) {
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

pub async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The event as a client gets it; a QR code comes with its image, ready to show.
fn render(event: &SessionEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let (SessionEvent::QrCode { code, .. }, Some(object)) = (event, value.as_object_mut())
        && let Ok(svg) = crate::qr::svg(code)
    {
        object.insert("svg".into(), Value::String(svg));
    }
    value
}

/// Stamps an event with the `cursor` a client reconnects with.
fn stamp(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        object.insert("cursor".into(), Value::String(now));
    }
    value
}

/// The next event of a subscription the feed may not have.
async fn recv_some(
    events: &mut Option<broadcast::Receiver<SessionEvent>>,
) -> Result<SessionEvent, RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}
