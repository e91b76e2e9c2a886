//! `/api/admin/users`: list and search accounts, create them, disable / enable, promote /
//! demote, reset passwords and delete.
//!
//! Disabling an account stops its WhatsApp session at once (the device stays paired, so
//! enabling the account and initializing resumes without a QR code); its tokens and API keys
//! are refused from the next request on. Deleting an account logs its WhatsApp device out
//! first, then removes the account with its API keys, session state and messages; the audit
//! log keeps its id and email.

use std::{collections::HashMap, sync::Arc};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::{Filter, filters::BoxedFilter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::http::query;
use crate::{
    admin::{self as queries, users::UserPage},
    auth::password,
    domain::{Email, NewPassword, Role},
    http::{
        error::{ApiError, respond},
        filters::{Caller, json_body, with_state},
    },
    state::AppState,
};

#[derive(Deserialize)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::User
}

#[derive(Deserialize)]
struct RoleChange {
    role: Role,
}

#[derive(Deserialize)]
struct PasswordReset {
    password: String,
}

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let body = state.body_limits;
    let list = warp::path!("api" / "admin" / "users")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .and(crate::http::query::query())
        .then(|state, _caller, query| async move { respond(list(state, query).await) });
    let create = warp::path!("api" / "admin" / "users")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .and(json_body(body))
        .then(|state, caller, body| async move { respond(create(state, caller, body).await) });
    let disable = warp::path!("api" / "admin" / "users" / Uuid / "disable")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .then(
            |id, state, caller| async move { respond(set_disabled(state, caller, id, true).await) },
        );
    let enable =
        warp::path!("api" / "admin" / "users" / Uuid / "enable")
            .and(warp::post())
            .and(with_state(state.clone()))
            .and(admin(state.clone()))
            .then(|id, state, caller| async move {
                respond(set_disabled(state, caller, id, false).await)
            });
    let role =
        warp::path!("api" / "admin" / "users" / Uuid / "role")
            .and(warp::post())
            .and(with_state(state.clone()))
            .and(admin(state.clone()))
            .and(json_body(body))
            .then(|id, state, caller, body| async move {
                respond(set_role(state, caller, id, body).await)
            });
    let password = warp::path!("api" / "admin" / "users" / Uuid / "password")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .and(json_body(body))
        .then(|id, state, caller, body| async move {
            respond(reset_password(state, caller, id, body).await)
        });
    let delete = warp::path!("api" / "admin" / "users" / Uuid)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(admin(state))
        .then(|id, state, caller| async move { respond(delete(state, caller, id).await) });
    list.or(create)
        .unify()
        .or(disable)
        .unify()
        .or(enable)
        .unify()
        .or(role)
        .unify()
        .or(password)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

async fn list(state: Arc<AppState>, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let page = query::bounded(&query, "page", 1, i64::from(i32::MAX))?;
    let per_page = query::bounded(
        &query,
        "per_page",
        queries::users::DEFAULT_PER_PAGE,
        queries::users::MAX_PER_PAGE,
    )?;
    let search = query
        .get("search")
        .map(|text| text.trim())
        .filter(|text| !text.is_empty());
    let UserPage { users, total } =
        queries::users::list(&state.pool, search, page, per_page).await?;
    Ok(json_reply(
        &json!({ "users": users, "total": total, "page": page, "per_page": per_page }),
        StatusCode::OK,
    ))
}

async fn create(state: Arc<AppState>, caller: Caller, body: NewUser) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email).map_err(|m| ApiError::validation("email", m))?;
    let new_password =
        NewPassword::parse(&body.password).map_err(|m| ApiError::validation("password", m))?;
    let hash = password::hash(new_password.expose()).await?;
    let user = queries::users::create(&state.pool, &caller.user, &email, &hash, body.role).await?;
    tracing::info!(admin = %caller.user.id, user = %user.id, "account created by an admin");
    Ok(json_reply(&json!({ "user": user }), StatusCode::CREATED))
}

async fn set_disabled(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    disabled: bool,
) -> Result<Response, ApiError> {
    let user = queries::users::set_disabled(&state.pool, &caller.user, id, disabled).await?;
    let session_stopped = if disabled {
        state
            .sessions
            .stop(id, "the account was disabled by an administrator")
            .await
            .map_err(session_error)?
    } else {
        false
    };
    Ok(json_reply(
        &json!({ "user": user, "session_stopped": session_stopped }),
        StatusCode::OK,
    ))
}

async fn set_role(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: RoleChange,
) -> Result<Response, ApiError> {
    let user = queries::users::set_role(&state.pool, &caller.user, id, body.role).await?;
    Ok(json_reply(&json!({ "user": user }), StatusCode::OK))
}

async fn reset_password(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: PasswordReset,
) -> Result<Response, ApiError> {
    let new_password =
        NewPassword::parse(&body.password).map_err(|m| ApiError::validation("password", m))?;
    let hash = password::hash(new_password.expose()).await?;
    let user = queries::users::set_password(&state.pool, &caller.user, id, &hash).await?;
    Ok(json_reply(&json!({ "user": user }), StatusCode::OK))
}

async fn delete(state: Arc<AppState>, caller: Caller, id: Uuid) -> Result<Response, ApiError> {
    // Refuse before logging the device out, so a refused delete changes nothing.
    queries::users::check_deletable(&state.pool, id).await?;
    let had_session = queries::sessions::exists(&state.pool, id).await?;
    if had_session {
        state.sessions.disconnect(id).await.map_err(session_error)?;
    }
    let user = queries::users::delete(&state.pool, &caller.user, id).await?;
    tracing::info!(admin = %caller.user.id, user = %user.id, "account deleted by an admin");
    Ok(json_reply(
        &json!({ "deleted": user, "whatsapp_logged_out": had_session }),
        StatusCode::OK,
    ))
}
