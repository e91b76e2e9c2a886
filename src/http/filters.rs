//! Request extractors shared by the routes: JSON bodies, the client's address and the caller's
//! identity (login token or API key).

use std::{convert::Infallible, net::IpAddr, sync::Arc};

use serde::de::DeserializeOwned;
use uuid::Uuid;
use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::{
    api_keys,
    auth::{api_key, jwt::TokenError},
    state::AppState,
    users::{self, User},
};

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Token,
    ApiKey { key_id: Uuid },
}

/// An authenticated caller whose account is enabled.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

pub fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// A JSON body of at most the configured size, decoded into `T`, with errors that say what is
/// wrong: unreadable JSON, or a missing / mistyped field.
pub fn json_body<T: DeserializeOwned + Send>(
    max_bytes: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(max_bytes)
        .and(warp::body::bytes())
        .and_then(|bytes: bytes::Bytes| async move {
            serde_json::from_slice::<T>(&bytes).map_err(|error| {
                let message = error.to_string();
                warp::reject::custom(match error.classify() {
                    serde_json::error::Category::Data => ApiError::InvalidBody(message),
                    _ => ApiError::MalformedJson(message),
                })
            })
        })
}

/// The client's address: the connection's peer, or — when `trust_forwarded_for` is set,
/// behind a reverse proxy — the last `X-Forwarded-For` entry, which the proxy appended.
pub fn client_ip(
    trust_forwarded_for: bool,
) -> impl Filter<Extract = (IpAddr,), Error = Rejection> + Clone {
    warp::addr::remote()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .map(
            move |peer: Option<std::net::SocketAddr>, forwarded: Option<String>| {
                let forwarded = forwarded
                    .filter(|_| trust_forwarded_for)
                    .and_then(|list| list.rsplit(',').next()?.trim().parse().ok());
                forwarded
                    .or(peer.map(|a| a.ip()))
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            },
        )
}

/// Any caller: a login token (`Authorization: Bearer <jwt>`) or an API key
/// (`X-Api-Key: <key>` or `Authorization: Bearer <key>`).
pub fn caller(state: Arc<AppState>) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("x-api-key"))
        .and(with_state(state))
        .and_then(|authorization: Option<String>, api_key: Option<String>, state: Arc<AppState>| async move {
            identify(&state, authorization, api_key)
                .await
                .map_err(warp::reject::custom)
        })
}

/// A caller logged in with a token; API keys may not manage the account itself.
pub fn session_caller(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(state).and_then(|caller: Caller| async move {
        match caller.credential {
            Credential::Token => Ok(caller),
            Credential::ApiKey { .. } => Err(warp::reject::custom(ApiError::Forbidden(
                "this endpoint needs a login token, not an API key",
            ))),
        }
    })
}

async fn identify(
    state: &AppState,
    authorization: Option<String>,
    api_key_header: Option<String>,
) -> Result<Caller, ApiError> {
    let bearer = authorization.as_deref().and_then(|value| {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
    });
    if let Some(key) = api_key_header.as_deref().map(str::trim) {
        return identify_key(state, key).await;
    }
    match bearer {
        Some(credential) if api_key::looks_like_key(credential) => {
            identify_key(state, credential).await
        }
        Some(token) => identify_token(state, token).await,
        None => Err(ApiError::Unauthorized(
            "missing_credentials",
            "send a login token or API key in the Authorization header",
        )),
    }
}

pub(super) async fn identify_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let (key, user) = api_keys::authenticate(&state.pool, &api_key::digest(key))
        .await?
        .ok_or(ApiError::Unauthorized(
            "invalid_api_key",
            "the API key is unknown or has been revoked",
        ))?;
    if user.disabled {
        return Err(ApiError::AccountDisabled);
    }
    Ok(Caller {
        user,
        credential: Credential::ApiKey { key_id: key.id },
    })
}

pub(super) async fn identify_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let claims = state.tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => {
            ApiError::Unauthorized("token_expired", "the login token has expired")
        }
        TokenError::Invalid => {
            ApiError::Unauthorized("invalid_token", "the login token is invalid")
        }
    })?;
    let user = users::find_by_id(&state.pool, claims.sub)
        .await?
        .ok_or(ApiError::Unauthorized(
            "invalid_token",
            "the login token is invalid",
        ))?;
    if user.disabled {
        return Err(ApiError::AccountDisabled);
    }
    if user.token_version != claims.ver {
        return Err(ApiError::Unauthorized(
            "token_revoked",
            "the login token was revoked; log in again",
        ));
    }
    Ok(Caller {
        user,
        credential: Credential::Token,
    })
}
