//! The `wa_sessions` table: one row per user, holding the session's state as users and
//! admins see it. Its `id` is the namespace of the session's WhatsApp device state.
//!
//! State is written by the session's owner only, under its lease ([`Fence`]); the
//! user's intent (`wanted`) by whichever node took the request.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::PgPool;
use crate::error::SessionError;
use crate::events::{EventHub, SessionEvent};
use crate::lease::Fence;

/// Where a session stands.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Nothing running (never started, or disconnected by the user).
    Idle,
    /// The client is (re)connecting or logging in.
    Connecting,
    /// Unpaired: a QR code is waiting to be scanned.
    Qr,
    Connected,
    /// Stopped by WhatsApp or the phone (logout, replaced, QR not scanned, ban); see `last_error`.
    Disconnected,
    /// Crashed more often than the restart budget allows; see `last_error`.
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Connecting => "connecting",
            SessionState::Qr => "qr",
            SessionState::Connected => "connected",
            SessionState::Disconnected => "disconnected",
            SessionState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "connecting" => SessionState::Connecting,
            "qr" => SessionState::Qr,
            "connected" => SessionState::Connected,
            "disconnected" => SessionState::Disconnected,
            "failed" => SessionState::Failed,
            // The CHECK constraint admits nothing else.
            _ => SessionState::Idle,
        }
    }
}

/// A session as the status endpoint shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SessionStatus {
    pub state: SessionState,
    pub phone: Option<String>,
    pub push_name: Option<String>,
    pub connected_since: Option<DateTime<Utc>>,
    pub restart_count: i32,
    pub last_error: Option<String>,
    pub qr_code: Option<String>,
    pub qr_expires_at: Option<DateTime<Utc>>,
    /// A paired device is stored: starting the session logs in without a QR code.
    pub paired: bool,
    pub updated_at: DateTime<Utc>,
}

const STATUS_COLUMNS: &str = "s.state, s.phone, s.push_name, s.connected_since, s.restart_count, \
     s.last_error, s.qr_code, s.qr_expires_at, s.updated_at, \
     EXISTS (SELECT 1 FROM wa_device d WHERE d.session_id = s.id AND d.pn IS NOT NULL) AS paired";

fn status_from_row(row: &Row) -> SessionStatus {
    SessionStatus {
        state: SessionState::parse(row.get("state")),
        phone: row.get("phone"),
        push_name: row.get("push_name"),
        connected_since: row.get("connected_since"),
        restart_count: row.get("restart_count"),
        last_error: row.get("last_error"),
        qr_code: row.get("qr_code"),
        qr_expires_at: row.get("qr_expires_at"),
        paired: row.get("paired"),
        updated_at: row.get("updated_at"),
    }
}

/// The session of `user_id`, or `None` if the user never initialized one.
pub async fn status(pool: &PgPool, user_id: Uuid) -> Result<Option<SessionStatus>, SessionError> {
    let conn = pool.get().await?;
    let sql = format!("SELECT {STATUS_COLUMNS} FROM wa_sessions s WHERE s.user_id = $1");
    let rows = conn
        .query_typed(sql.as_str(), &[(&user_id, Type::UUID)])
        .await?;
    Ok(rows.first().map(status_from_row))
}

/// The session id (device-state namespace) of `user_id`, creating the row on first use.
/// Every request for a session (each send's notice among them) asks, so the usual answer is
/// one read; only a user's first session is written.
pub async fn ensure(pool: &PgPool, user_id: Uuid) -> Result<Uuid, SessionError> {
    let conn = pool.get().await?;
    let known = conn
        .query_cached(
            "SELECT s.id FROM users u LEFT JOIN wa_sessions s ON s.user_id = u.id
              WHERE u.id = $1",
            &[(&user_id, Type::UUID)],
        )
        .await?
        .into_iter()
        .next()
        .ok_or(SessionError::UnknownUser)?;
    if let Some(session_id) = known.get::<_, Option<Uuid>>(0) {
        return Ok(session_id);
    }
    // Two first requests may race: the no-op update makes RETURNING give the winner's id.
    let row = conn
        .query_typed_one(
            "INSERT INTO wa_sessions (id, user_id) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id
             RETURNING id",
            &[(&Uuid::new_v4(), Type::UUID), (&user_id, Type::UUID)],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether any device state (paired or not) is stored under `session_id`.
pub async fn device_stored(pool: &PgPool, session_id: Uuid) -> Result<bool, SessionError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM wa_device WHERE session_id = $1)",
            &[(&session_id, Type::UUID)],
        )
        .await?;
    Ok(row.get(0))
}

/// The session should run (the user initialized it, or linked it) or not (stopped,
/// logged out, given up on): live nodes claim the leases of sessions that should run. The
/// user's intent, so any node writes it, unfenced.
pub async fn set_wanted(pool: &PgPool, user_id: Uuid, wanted: bool) -> Result<(), SessionError> {
    let conn = pool.get().await?;
    conn.execute_typed(
        "UPDATE wa_sessions SET wanted = $2 WHERE user_id = $1",
        &[(&user_id, Type::UUID), (&wanted, Type::BOOL)],
    )
    .await?;
    Ok(())
}

/// A change of a session's state. [`transition`] writes it to `wa_sessions` and announces
/// it on the event hub: the one place both happen, so a write that was refused (the lease
/// moved on) is never announced, and every announced state is the recorded one.
#[derive(Clone, Copy, Debug)]
pub enum Transition<'a> {
    /// A starting session: the QR code of an earlier attempt is void.
    Starting,
    /// A fresh QR code to scan, replacing any earlier one.
    Qr {
        code: &'a str,
        expires_at: DateTime<Utc>,
    },
    /// The phone scanned the QR code (or typed the link code): its number is known, the
    /// login still has to happen.
    Paired { phone: &'a str },
    Connected {
        phone: &'a str,
        push_name: Option<&'a str>,
    },
    /// The supervisor restarts a crashed session: counted, with why it crashed.
    Restarting { error: &'a str },
    /// The session stopped (or lost its connection, `state` = connecting) for `reason`;
    /// going `idle` (the user's own doing) clears the last error instead. `forget_phone`
    /// is for a device that no longer exists: logged out, disconnected by the user. A
    /// session that ended (`idle`, `disconnected`, `failed`) is no longer wanted: no node
    /// brings it back by itself.
    Stopped {
        state: SessionState,
        reason: &'a str,
        forget_phone: bool,
    },
}

impl Transition<'_> {
    /// The state the session is in afterwards.
    pub fn state(&self) -> SessionState {
        match self {
            Transition::Starting | Transition::Paired { .. } | Transition::Restarting { .. } => {
                SessionState::Connecting
            }
            Transition::Qr { .. } => SessionState::Qr,
            Transition::Connected { .. } => SessionState::Connected,
            Transition::Stopped { state, .. } => *state,
        }
    }

    /// What subscribers hear of it, in order: the new `session_state`, then the details.
    fn events(&self, user_id: Uuid) -> Vec<SessionEvent> {
        let state = SessionEvent::SessionState {
            user_id,
            state: self.state(),
        };
        let detail = match *self {
            Transition::Qr { code, expires_at } => Some(SessionEvent::QrCode {
                user_id,
                code: code.to_owned(),
                expires_at,
            }),
            Transition::Connected { phone, push_name } => Some(SessionEvent::WhatsappConnected {
                user_id,
                phone: phone.to_owned(),
                push_name: push_name.map(str::to_owned),
            }),
            Transition::Stopped { reason, .. } => Some(SessionEvent::WhatsappDisconnected {
                user_id,
                reason: reason.to_owned(),
            }),
            Transition::Starting | Transition::Paired { .. } | Transition::Restarting { .. } => {
                None
            }
        };
        std::iter::once(state).chain(detail).collect()
    }
}

/// Records `change` of `user_id`'s session under its lease, then announces it. Nothing is
/// announced when the write fails.
pub async fn transition(
    pool: &PgPool,
    fence: &Fence,
    events: &EventHub,
    user_id: Uuid,
    change: Transition<'_>,
) -> Result<(), SessionError> {
    let state = change.state().as_str();
    if matches!(change, Transition::Restarting { .. }) {
        events.telemetry().restarted();
    }
    match change {
        Transition::Starting => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET state = 'connecting', qr_code = NULL, qr_expires_at = NULL,
                        connected_since = NULL, updated_at = now()
                 WHERE user_id = $1",
                &[(&user_id, Type::UUID)],
            )
            .await?
        }
        Transition::Qr { code, expires_at } => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET state = 'qr', qr_code = $2, qr_expires_at = $3,
                        updated_at = now()
                 WHERE user_id = $1",
                &[
                    (&user_id, Type::UUID),
                    (&code, Type::TEXT),
                    (&expires_at, Type::TIMESTAMPTZ),
                ],
            )
            .await?
        }
        Transition::Paired { phone } => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET state = 'connecting', phone = $2, qr_code = NULL,
                        qr_expires_at = NULL, last_error = NULL, updated_at = now()
                 WHERE user_id = $1",
                &[(&user_id, Type::UUID), (&phone, Type::TEXT)],
            )
            .await?
        }
        Transition::Connected { phone, push_name } => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET state = 'connected', phone = $2, push_name = $3,
                        connected_since = now(), last_error = NULL, qr_code = NULL,
                        qr_expires_at = NULL, updated_at = now()
                 WHERE user_id = $1",
                &[
                    (&user_id, Type::UUID),
                    (&phone, Type::TEXT),
                    (&push_name, Type::TEXT),
                ],
            )
            .await?
        }
        Transition::Restarting { error } => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET restart_count = restart_count + 1, last_error = $2,
                        state = 'connecting', connected_since = NULL, updated_at = now()
                 WHERE user_id = $1",
                &[(&user_id, Type::UUID), (&error, Type::TEXT)],
            )
            .await?
        }
        Transition::Stopped {
            reason,
            forget_phone,
            ..
        } => {
            execute(
                pool,
                fence,
                "UPDATE wa_sessions SET state = $2,
                        last_error = CASE WHEN $2 = 'idle' THEN NULL ELSE $3 END,
                        connected_since = NULL, qr_code = NULL, qr_expires_at = NULL,
                        phone = CASE WHEN $4 THEN NULL ELSE phone END,
                        push_name = CASE WHEN $4 THEN NULL ELSE push_name END,
                        wanted = wanted AND $2 = 'connecting',
                        updated_at = now()
                 WHERE user_id = $1",
                &[
                    (&user_id, Type::UUID),
                    (&state, Type::TEXT),
                    (&reason, Type::TEXT),
                    (&forget_phone, Type::BOOL),
                ],
            )
            .await?
        }
    }
    for event in change.events(user_id) {
        events.publish(event);
    }
    Ok(())
}

pub async fn set_last_error(
    pool: &PgPool,
    fence: &Fence,
    user_id: Uuid,
    error: &str,
) -> Result<(), SessionError> {
    execute(
        pool,
        fence,
        "UPDATE wa_sessions SET last_error = $2, updated_at = now() WHERE user_id = $1",
        &[(&user_id, Type::UUID), (&error, Type::TEXT)],
    )
    .await
}

/// Runs one state write under the session's lease.
async fn execute(
    pool: &PgPool,
    fence: &Fence,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<(), SessionError> {
    fence.write(pool, sql, params).await?;
    Ok(())
}

/// Whether `user_id` exists and is not disabled.
pub async fn user_enabled(pool: &PgPool, user_id: Uuid) -> Result<bool, SessionError> {
    let conn = pool.get().await?;
    let row = conn
        .query_typed_opt(
            "SELECT 1 FROM users WHERE id = $1 AND disabled_at IS NULL",
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(row.is_some())
}
