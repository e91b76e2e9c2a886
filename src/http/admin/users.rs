//! `/api/admin/users`: list and search accounts, create them, disable / enable, promote /
//! demote, reset passwords and delete.
//!
//! Disabling an account stops its WhatsApp session at once (the device stays paired, so
//! enabling the account and initializing resumes without a QR code); its tokens and API keys
//! are refused from the next request on. Deleting an account logs its WhatsApp device out
//! first, then removes the account with its API keys, session state and messages; the audit
//! log keeps its id and email.

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::{
    admin::{
        self as queries,
        users::{UserPage, UserSummary},
    },
    auth::password,
    domain::{Email, NewPassword, Role},
    http::{
        error::{ApiError, ErrorBody, respond},
        filters::{Caller, json_body, with_state},
        query,
        routing::Route,
    },
    state::AppState,
    users::User,
};

#[derive(Deserialize, ToSchema)]
struct NewUser {
    email: String,
    password: String,
    /// `user` unless given.
    #[serde(default = "default_role")]
    role: Role,
}

fn default_role() -> Role {
    Role::User
}

#[derive(Deserialize, ToSchema)]
struct RoleChange {
    role: Role,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AdminPasswordReset)]
struct PasswordReset {
    password: String,
}

#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<UserSummary>,
    /// Accounts matching the search, on every page.
    total: i64,
    page: i64,
    per_page: i64,
}

#[derive(Serialize, ToSchema)]
struct OneUser {
    user: User,
}

#[derive(Serialize, ToSchema)]
struct UserEnabledChange {
    user: User,
    /// Disabling stopped a running WhatsApp session.
    session_stopped: bool,
}

#[derive(Serialize, ToSchema)]
struct UserDeleted {
    deleted: User,
    /// The account's WhatsApp device was logged out first.
    whatsapp_logged_out: bool,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let body = state.body_limits;
    vec![
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(query::query())
                .then(|state, _caller, query| async move { respond(list(state, query).await) })
                .boxed()
        }),
        Route::new::<__path_create>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(
                    |state, caller, body| async move { respond(create(state, caller, body).await) },
                )
                .boxed()
        }),
        Route::with::<__path_disable, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(disable)
                .boxed()
        }),
        Route::with::<__path_enable, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(enable)
                .boxed()
        }),
        Route::with::<__path_set_role, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(|id, state, caller, body| async move {
                    respond(set_role(state, caller, id, body).await)
                })
                .boxed()
        }),
        Route::with::<__path_reset_password, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(|id, state, caller, body| async move {
                    respond(reset_password(state, caller, id, body).await)
                })
                .boxed()
        }),
        Route::with::<__path_delete, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|id, state, caller| async move { respond(delete(state, caller, id).await) })
                .boxed()
        }),
    ]
}

/// Accounts
///
/// Oldest first, one page; `search` matches part of the email, in any case.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", operation_id = "admin_list_users",
    security(("bearer" = [])),
    params(
        ("search" = Option<String>, Query, description = "Part of the email"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 2147483647, description = "From 1"),
        ("per_page" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Accounts per page (25)"),
    ),
    responses((status = 200, description = "One page of accounts", body = UserList)))]
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
        &UserList {
            users,
            total,
            page,
            per_page,
        },
        StatusCode::OK,
    ))
}

/// Create an account
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", operation_id = "admin_create_user",
    security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = OneUser),
        (status = 409, description = "`email_taken`", body = ErrorBody),
    ))]
async fn create(state: Arc<AppState>, caller: Caller, body: NewUser) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email).map_err(|m| ApiError::validation("email", m))?;
    let new_password =
        NewPassword::parse(&body.password).map_err(|m| ApiError::validation("password", m))?;
    let hash = password::hash(new_password.expose()).await?;
    let user = queries::users::create(&state.pool, &caller.user, &email, &hash, body.role).await?;
    tracing::info!(admin = %caller.user.id, user = %user.id, "account created by an admin");
    Ok(json_reply(&OneUser { user }, StatusCode::CREATED))
}

/// Disable an account
///
/// Its WhatsApp session stops at once (the device stays paired); its tokens and API keys are
/// refused from the next request on.
#[utoipa::path(post, path = "/api/admin/users/{id}/disable", tag = "admin", operation_id = "admin_disable_user",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Disabled", body = UserEnabledChange),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last enabled admin", body = ErrorBody),
    ))]
async fn disable(id: Uuid, state: Arc<AppState>, caller: Caller) -> Response {
    respond(set_disabled(state, caller, id, true).await)
}

/// Enable an account
#[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin", operation_id = "admin_enable_user",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses((status = 200, description = "Enabled", body = UserEnabledChange), (status = 404, description = "No such account", body = ErrorBody)))]
async fn enable(id: Uuid, state: Arc<AppState>, caller: Caller) -> Response {
    respond(set_disabled(state, caller, id, false).await)
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
        &UserEnabledChange {
            user,
            session_stopped,
        },
        StatusCode::OK,
    ))
}

/// Promote or demote an account
#[utoipa::path(post, path = "/api/admin/users/{id}/role", tag = "admin", operation_id = "admin_set_role",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "Changed", body = OneUser),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last enabled admin", body = ErrorBody),
    ))]
async fn set_role(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: RoleChange,
) -> Result<Response, ApiError> {
    let user = queries::users::set_role(&state.pool, &caller.user, id, body.role).await?;
    Ok(json_reply(&OneUser { user }, StatusCode::OK))
}

/// Set an account's password
///
/// Every login token of the account stops working.
#[utoipa::path(post, path = "/api/admin/users/{id}/password", tag = "admin", operation_id = "admin_reset_password",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = PasswordReset,
    responses((status = 200, description = "Changed", body = OneUser), (status = 404, description = "No such account", body = ErrorBody)))]
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
    Ok(json_reply(&OneUser { user }, StatusCode::OK))
}

/// Delete an account
///
/// Logs its WhatsApp device out first, then removes the account with its API keys, session
/// and messages; the audit log keeps its id and email.
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", operation_id = "admin_delete_user",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Deleted", body = UserDeleted),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last enabled admin", body = ErrorBody),
    ))]
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
        &UserDeleted {
            deleted: user,
            whatsapp_logged_out: had_session,
        },
        StatusCode::OK,
    ))
}
