//! `/api/admin/sessions`: every WhatsApp session of the installation, and stopping,
//! restarting or disconnecting one.
//!
//! - `stop`: the session ends, its device stays paired (initialize resumes it, no QR code).
//! - `restart`: stop, then start again; no logout.
//! - `disconnect`: the device is logged out of WhatsApp and forgotten, as the user's own
//!   "unlink" does.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use warp::{Filter, filters::BoxedFilter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::{
    admin::{self as queries, audit},
    http::{
        error::{ApiError, respond},
        filters::{Caller, with_state},
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

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "admin" / "sessions")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .then(|state, _caller| async move { respond(list(state).await) });
    let action = |name: &'static str, action: Action| {
        warp::path("api")
            .and(warp::path("admin"))
            .and(warp::path("sessions"))
            .and(warp::path::param::<Uuid>())
            .and(warp::path(name))
            .and(warp::path::end())
            .and(warp::post())
            .and(with_state(state.clone()))
            .and(admin(state.clone()))
            .then(move |user_id, state, caller| async move {
                respond(act(state, caller, user_id, action).await)
            })
    };
    let stop = action("stop", Action::Stop);
    let restart = action("restart", Action::Restart);
    let disconnect = action("disconnect", Action::Disconnect);
    list.or(stop)
        .unify()
        .or(restart)
        .unify()
        .or(disconnect)
        .unify()
        .boxed()
}

async fn list(state: Arc<AppState>) -> Result<Response, ApiError> {
    let node = &state.sessions.node().name;
    let sessions = queries::sessions::list(&state.pool, None).await?;
    Ok(json_reply(
        &json!({ "node": node, "sessions": sessions }),
        StatusCode::OK,
    ))
}

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
        &*conn,
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
    Ok(json_reply(&json!({ "session": session }), StatusCode::OK))
}

async fn stop(state: &AppState, admin: &User, user_id: Uuid) -> Result<bool, ApiError> {
    let reason = format!("stopped by administrator {}", admin.email);
    state
        .sessions
        .stop(user_id, &reason)
        .await
        .map_err(session_error)
}
