//! `/api/keys`: an account's API keys — create (the secret is shown in this answer only), list,
//! revoke.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, json_body, session_caller, with_state},
    routing::Route,
};
use crate::{
    api_keys::{self, ApiKey},
    auth::api_key,
    state::AppState,
};

const MAX_NAME_LEN: usize = 100;

#[derive(Deserialize, ToSchema)]
struct NewKey {
    /// 1 to 100 characters, to tell keys apart.
    name: String,
}

/// A new key: the only answer that carries its secret.
#[derive(Serialize, ToSchema)]
struct CreatedKey {
    id: Uuid,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    /// The key itself, `bw_…`: shown this once, botwave keeps only a digest.
    key: String,
}

#[derive(Serialize, ToSchema)]
struct KeyList {
    keys: Vec<ApiKey>,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_create>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .and(json_body(state.body_limits))
                .then(
                    |state, caller, body| async move { respond(create(state, caller, body).await) },
                )
                .boxed()
        }),
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(|state, caller| async move { respond(list(state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_revoke, String>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(|id, state, caller| async move { respond(revoke(id, state, caller).await) })
                .boxed()
        }),
    ]
}

/// Create an API key
#[utoipa::path(post, path = "/api/keys", tag = "api keys", operation_id = "create_api_key",
    security(("bearer" = [])),
    request_body = NewKey,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedKey),
        (status = 403, description = "`plan_limit_reached`: the plan allows no more API keys", body = ErrorBody),
    ))]
async fn create(
    state: Arc<AppState>,
    caller: Caller,
    body: NewKey,
) -> Result<impl Reply, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::validation(
            "name",
            format!("name must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    crate::http::usage::ensure_room(&state, caller.user.id, crate::plans::Resource::ApiKeys)
        .await?;
    let key = api_key::generate();
    let stored = api_keys::create(&state.pool, caller.user.id, name, &key).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&CreatedKey {
            id: stored.id,
            name: stored.name,
            prefix: stored.prefix,
            created_at: stored.created_at,
            key: key.secret,
        }),
        StatusCode::CREATED,
    ))
}

/// The caller's API keys
#[utoipa::path(get, path = "/api/keys", tag = "api keys", operation_id = "list_api_keys",
    security(("bearer" = [])),
    responses((status = 200, description = "Every active key (never the secret)", body = KeyList)))]
async fn list(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let keys = api_keys::list(&state.pool, caller.user.id).await?;
    Ok(warp::reply::json(&KeyList { keys }))
}

/// Revoke an API key
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "api keys", operation_id = "revoke_api_key",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
    ))]
async fn revoke(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    // Someone else's key and no key at all look the same from outside.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("API key"))?;
    if api_keys::revoke(&state.pool, caller.user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("API key"))
    }
}
