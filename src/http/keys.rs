//! `/api/keys`: an account's API keys — create (the secret is shown in this answer only), list,
//! revoke.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{Caller, json_body, session_caller, with_state},
};
use crate::{api_keys, auth::api_key, state::AppState};

const MAX_NAME_LEN: usize = 100;

#[derive(Deserialize)]
struct NewKey {
    name: String,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "keys")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state.clone()))
        .and(json_body(state.body_limits))
        .then(|state, caller, body| async move { respond(create(state, caller, body).await) });
    let list = warp::path!("api" / "keys")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(session_caller(state.clone()))
        .then(|state, caller| async move { respond(list(state, caller).await) });
    let revoke = warp::path!("api" / "keys" / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(session_caller(state))
        .then(|id, state, caller| async move { respond(revoke(id, state, caller).await) });
    create.or(list).or(revoke)
}

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
    let key = api_key::generate();
    let stored = api_keys::create(&state.pool, caller.user.id, name, &key).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({
            "id": stored.id,
            "name": stored.name,
            "prefix": stored.prefix,
            "created_at": stored.created_at,
            "key": key.secret,
        })),
        StatusCode::CREATED,
    ))
}

async fn list(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let keys = api_keys::list(&state.pool, caller.user.id).await?;
    Ok(warp::reply::json(&json!({ "keys": keys })))
}

async fn revoke(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    // Someone else's key and no key at all look the same from outside.
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("API key"))?;
    if api_keys::revoke(&state.pool, caller.user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("API key"))
    }
}
