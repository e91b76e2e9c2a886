//! `/api/admin/sessions`: every WhatsApp session of the installation, and stopping,
//! restarting or disconnecting one.
//!
//! - `stop`: the session ends, its device stays paired (initialize resumes it, no QR code).
//! - `restart`: stop, then start again; no logout.
//! - `disconnect`: the device is logged out of WhatsApp and forgotten, as the user's own
//!   "unlink" does.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::{
    admin::{self as queries, audit, sessions::SessionOverview},
    http::{
        error::{ApiError, ErrorBody, respond},
        filters::{Caller, with_state},
        routing::Route,
    },
    state::AppState,
    users::{self, User},
};

#[derive(Clone, Copy)]
enum Action {
    Stop,
    Restart,
    Disconnect,
}

impl Action {
    fn audit_name(self) -> &'static str {
        match self {
            Action::Stop => "session.stop",
            Action::Restart => "session.restart",
            Action::Disconnect => "session.disconnect",
        }
    }
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    /// The node that answered.
    node: String,
    sessions: Vec<SessionOverview>,
}

#[derive(Serialize, ToSchema)]
struct SessionActed {
    /// The session after the action.
    session: Option<SessionOverview>,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let action = |action: Action| {
        move |at: warp::filters::BoxedFilter<(Uuid,)>| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(move |user_id, state, caller| async move {
                    respond(act(state, caller, user_id, action).await)
                })
                .boxed()
        }
    };
    vec![
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|state, _caller| async move { respond(list(state).await) })
                .boxed()
        }),
        Route::with::<__path_stop_session, Uuid>(action(Action::Stop)),
        Route::with::<__path_restart_session, Uuid>(action(Action::Restart)),
        Route::with::<__path_disconnect_session, Uuid>(action(Action::Disconnect)),
    ]
}

/// Every WhatsApp session
#[utoipa::path(get, path = "/api/admin/sessions", tag = "admin", operation_id = "admin_list_sessions",
    security(("bearer" = [])),
    responses((status = 200, description = "Every session, with the node running it", body = SessionList)))]
async fn list(state: Arc<AppState>) -> Result<Response, ApiError> {
    let node = state.sessions.node().name.clone();
    let sessions = queries::sessions::list(&state.pool, None).await?;
    Ok(json_reply(&SessionList { node, sessions }, StatusCode::OK))
}

/// Stop a session
///
/// The session ends; its device stays paired (initialize resumes it, no QR code).
#[utoipa::path(post, path = "/api/admin/sessions/{user_id}/stop", tag = "admin", operation_id = "admin_stop_session",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Done", body = SessionActed),
        (status = 404, description = "No such account, or it has no session", body = ErrorBody),
        (status = 409, description = "`account_disabled` (restart)", body = ErrorBody),
        (status = 503, description = "The session could not be reached", body = ErrorBody),
    ))]
#[allow(dead_code)] // Documents a route whose handler is `act`.
fn stop_session() {}

/// Restart a session
///
/// Stop, then start again; no logout.
#[utoipa::path(post, path = "/api/admin/sessions/{user_id}/restart", tag = "admin", operation_id = "admin_restart_session",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Done", body = SessionActed),
        (status = 404, description = "No such account, or it has no session", body = ErrorBody),
        (status = 409, description = "`account_disabled` (restart)", body = ErrorBody),
        (status = 503, description = "The session could not be reached", body = ErrorBody),
    ))]
#[allow(dead_code)] // Documents a route whose handler is `act`.
fn restart_session() {}

/// Log a session out
///
/// The device is logged out of WhatsApp and forgotten, as the user's own unlink does.
#[utoipa::path(post, path = "/api/admin/sessions/{user_id}/disconnect", tag = "admin", operation_id = "admin_disconnect_session",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Done", body = SessionActed),
        (status = 404, description = "No such account, or it has no session", body = ErrorBody),
        (status = 409, description = "`account_disabled` (restart)", body = ErrorBody),
        (status = 503, description = "The session could not be reached", body = ErrorBody),
    ))]
#[allow(dead_code)] // Documents a route whose handler is `act`.
fn disconnect_session() {}

async fn act(
    state: Arc<AppState>,
    caller: Caller,
    user_id: Uuid,
    action: Action,
) -> Result<Response, ApiError> {
    let target = users::find_by_id(&state.pool, user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    if !queries::sessions::exists(&state.pool, user_id).await? {
        return Err(ApiError::NotFound("session"));
    }
    let was_running = match action {
        Action::Stop => stop(&state, &caller.user, user_id).await?,
        Action::Restart => {
            if target.disabled {
                return Err(ApiError::Conflict(
                    "account_disabled",
                    "the account is disabled; enable it before restarting its session".into(),
                ));
            }
            let was_running = stop(&state, &caller.user, user_id).await?;
            state
                .sessions
                .initialize(user_id)
                .await
                .map_err(session_error)?;
            was_running
        }
        Action::Disconnect => {
            state
                .sessions
                .disconnect(user_id)
                .await
                .map_err(session_error)?;
            true
        }
    };
    let conn = state.pool.get().await.map_err(crate::db::DbError::from)?;
    audit::record(
        &**conn,
        &caller.user,
        action.audit_name(),
        Some(audit::Target::from(&target)),
        json!({ "was_running": was_running }),
    )
    .await?;
    drop(conn);
    let session = queries::sessions::list(&state.pool, Some(user_id))
        .await?
        .into_iter()
        .next();
    Ok(json_reply(&SessionActed { session }, StatusCode::OK))
}

async fn stop(state: &AppState, admin: &User, user_id: Uuid) -> Result<bool, ApiError> {
    let reason = format!("stopped by administrator {}", admin.email);
    state
        .sessions
        .stop(user_id, &reason)
        .await
        .map_err(session_error)
}
