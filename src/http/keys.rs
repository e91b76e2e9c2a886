//! `/api/keys`: an account's API keys — create (the secret is shown in this answer only, the
//! scopes and an optional rate of its own chosen here), list, change (scopes, rate), revoke.

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
    api_keys::{self, ApiKey, KeyRate},
    auth::{api_key, request_limit::Rate, scope::Scope},
    state::AppState,
};

const MAX_NAME_LEN: usize = 100;

#[derive(Deserialize, ToSchema)]
struct NewKey {
    /// 1 to 100 characters, to tell keys apart.
    name: String,
    /// What the key may do: `messages:send`, `messages:read`, `webhooks:manage`,
    /// `session:read`. Omitted: all of them.
    #[schema(value_type = Option<Vec<Scope>>)]
    scopes: Option<Vec<String>>,
    /// A request rate of the key's own, at most the account's; omitted or `null`: the
    /// account's rate alone applies.
    rate_limit: Option<RateInput>,
}

/// A key's own request rate, as asked for.
#[derive(Deserialize, ToSchema)]
struct RateInput {
    /// Sustained requests per second, above 0 and at most the account's.
    requests_per_second: f64,
    /// Requests at once, 1 to the account's burst; omitted: `requests_per_second` rounded
    /// up (at least 1, at most the account's burst).
    burst: Option<f64>,
}

/// What changes about a key; what is omitted stays.
#[derive(Deserialize, ToSchema)]
struct KeyChange {
    /// The key's scopes from now on (as at creation).
    #[schema(value_type = Option<Vec<Scope>>)]
    scopes: Option<Vec<String>>,
    /// A new rate of the key's own, or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateInput>)]
    rate_limit: Option<Option<RateInput>>,
}

/// A field that is present (`Some`, its value possibly `null`), as opposed to omitted.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A new key: the only answer that carries its secret.
#[derive(Serialize, ToSchema)]
struct CreatedKey {
    id: Uuid,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    scopes: Vec<Scope>,
    rate_limit: Option<KeyRate>,
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
        Route::with::<__path_change, String>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .and(json_body(state.body_limits))
                .then(|id, state, caller, body| async move {
                    respond(change(id, state, caller, body).await)
                })
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

/// The scopes asked for: each known, without repeats, at least one.
fn parse_scopes(names: Vec<String>) -> Result<Vec<Scope>, ApiError> {
    let mut scopes = Vec::new();
    for name in &names {
        let scope = Scope::parse(name).ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            ApiError::validation(
                "scopes",
                format!("unknown scope \"{shown}\"; scopes are {}", Scope::names()),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(ApiError::validation(
            "scopes",
            format!("scopes must name at least one of {}", Scope::names()),
        ));
    }
    // Stored and shown in one order, whatever the order asked.
    Ok(Scope::ALL
        .into_iter()
        .filter(|scope| scopes.contains(scope))
        .collect())
}

/// A key's own rate as asked for: positive, and no more than the account's (which applies
/// to the key anyway).
fn parse_rate(input: RateInput, account: Rate) -> Result<KeyRate, ApiError> {
    let per_second = input.requests_per_second;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(ApiError::validation(
            "rate_limit.requests_per_second",
            "requests_per_second must be a number above 0",
        ));
    }
    if per_second > account.per_second {
        return Err(ApiError::validation(
            "rate_limit.requests_per_second",
            format!(
                "requests_per_second must be at most the account's {}",
                account.per_second
            ),
        ));
    }
    let burst = match input.burst {
        Some(burst) => {
            if !(burst.fract() == 0.0 && burst >= 1.0 && burst <= f64::from(account.burst)) {
                return Err(ApiError::validation(
                    "rate_limit.burst",
                    format!(
                        "burst must be a whole number from 1 to the account's {}",
                        account.burst
                    ),
                ));
            }
            burst as u32
        }
        None => (per_second.ceil() as u32).clamp(1, account.burst),
    };
    Ok(KeyRate {
        requests_per_second: per_second,
        burst,
    })
}

/// Create an API key
///
/// The key may do what its `scopes` say (all of them when omitted); a request outside them is
/// answered 403 `insufficient_scope`. Its requests count against the account's request rate,
/// and against its own `rate_limit` if it is given one.
#[utoipa::path(post, path = "/api/keys", tag = "api keys", operation_id = "create_api_key",
    security(("bearer" = [])),
    request_body = NewKey,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedKey),
        (status = 400, description = "`validation_failed`: `name`, `scopes` (an unknown or no scope) or `rate_limit.*` (not above 0, above the account's)", body = ErrorBody),
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
    let scopes = match body.scopes {
        Some(names) => parse_scopes(names)?,
        None => Scope::ALL.to_vec(),
    };
    let rate_limit = body
        .rate_limit
        .map(|rate| parse_rate(rate, state.account_rate))
        .transpose()?;
    crate::http::usage::ensure_room(&state, caller.user.id, crate::plans::Resource::ApiKeys)
        .await?;
    let key = api_key::generate();
    let stored = api_keys::create(
        &state.pool,
        caller.user.id,
        api_keys::NewKey {
            name,
            scopes: &scopes,
            rate_limit,
        },
        &key,
    )
    .await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&CreatedKey {
            id: stored.id,
            name: stored.name,
            prefix: stored.prefix,
            created_at: stored.created_at,
            scopes: stored.scopes,
            rate_limit: stored.rate_limit,
            key: key.secret,
        }),
        StatusCode::CREATED,
    ))
}

/// Change an API key
///
/// New `scopes`, and a new `rate_limit` of its own (`null` removes it); what is omitted stays.
/// A new rate starts with a full bucket.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "api keys", operation_id = "change_api_key",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id")),
    request_body = KeyChange,
    responses(
        (status = 200, description = "The key as it is now", body = ApiKey),
        (status = 400, description = "`validation_failed`: `scopes` or `rate_limit.*`", body = ErrorBody),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
    ))]
async fn change(
    id: String,
    state: Arc<AppState>,
    caller: Caller,
    body: KeyChange,
) -> Result<impl Reply, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("API key"))?;
    let scopes = body.scopes.map(parse_scopes).transpose()?;
    let rate_limit = body
        .rate_limit
        .map(|rate| {
            rate.map(|rate| parse_rate(rate, state.account_rate))
                .transpose()
        })
        .transpose()?;
    let changed = api_keys::change(
        &state.pool,
        caller.user.id,
        id,
        scopes.as_deref(),
        rate_limit,
    )
    .await?
    .ok_or(ApiError::NotFound("API key"))?;
    Ok(warp::reply::json(&changed))
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
