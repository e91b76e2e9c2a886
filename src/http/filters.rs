//! Request extractors shared by the routes: JSON bodies, the client's address and the caller's
//! identity (login token or API key, with the key's scopes and request rate checked).

use std::{convert::Infallible, net::IpAddr, sync::Arc, time::Duration};

use serde::de::DeserializeOwned;
use uuid::Uuid;
use warp::{Filter, Rejection};

use super::{error::ApiError, rate_headers, server::ClientAddr};
use crate::{
    api_keys,
    auth::{api_key, jwt::TokenError, scope::Scope},
    state::AppState,
    users::{self, User},
};

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    Token,
    ApiKey { key_id: Uuid, scopes: Vec<Scope> },
}

/// An authenticated caller whose account is enabled.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

impl Caller {
    /// Whether the caller may do what `scope` covers: a login token may do everything, an
    /// API key what its scopes say.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.credential {
            Credential::Token => Ok(()),
            Credential::ApiKey { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Credential::ApiKey { .. } => Err(ApiError::InsufficientScope(scope)),
        }
    }
}

pub fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// What a JSON body may be: how large, and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub read_timeout: Duration,
}

/// A JSON body within `limits`, decoded into `T`, with errors that say what is wrong: not
/// declared as JSON (415), too slow (408), unreadable JSON, a missing or mistyped field, or a
/// NUL character in a string (which PostgreSQL cannot store and no client means to send).
pub fn json_body<T: DeserializeOwned + Send>(
    limits: BodyLimits,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(|content_type: Option<String>| async move {
            if content_type.as_deref().is_some_and(is_json_media_type) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::UnsupportedMediaType))
            }
        })
        .untuple_one()
        .and(warp::body::content_length_limit(limits.max_bytes))
        .and(warp::body::stream())
        .and_then(move |body| async move {
            let bytes = tokio::time::timeout(limits.read_timeout, collect(body))
                .await
                .map_err(|_| warp::reject::custom(ApiError::RequestTimeout))?
                .map_err(|error| {
                    warp::reject::custom(ApiError::BadRequest(format!(
                        "cannot read the request body: {error}"
                    )))
                })?;
            decode_json::<T>(&bytes).map_err(warp::reject::custom)
        })
}

/// `application/json`, or a `+json` type, with any parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

pub(super) async fn collect(
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>>,
) -> Result<bytes::Bytes, warp::Error> {
    use futures_util::StreamExt;
    let mut collected = bytes::BytesMut::new();
    futures_util::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk?;
        while bytes::Buf::has_remaining(&chunk) {
            let piece = bytes::Buf::chunk(&chunk);
            collected.extend_from_slice(piece);
            let n = piece.len();
            bytes::Buf::advance(&mut chunk, n);
        }
    }
    Ok(collected.freeze())
}

fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    if let Some(path) = nul_path(&value, String::new()) {
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        return Err(ApiError::validation(
            field,
            "text must not contain NUL characters",
        ));
    }
    serde_json::from_value(value).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

/// Where in `value` a string (or key) holds a NUL character, as a dotted path.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |path: &str, key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, join(&path, &i.to_string()))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(path.clone())
            } else {
                nul_path(item, join(&path, key))
            }
        }),
        _ => None,
    }
}

/// The client's address: the connection's peer, or — when `trust_forwarded_for` is set,
/// behind a reverse proxy — the last `X-Forwarded-For` entry, which the proxy appended.
pub fn client_ip(
    trust_forwarded_for: bool,
) -> impl Filter<Extract = (IpAddr,), Error = Rejection> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .map(move |peer: Option<ClientAddr>, forwarded: Option<String>| {
            client_ip_of(trust_forwarded_for, peer, forwarded.as_deref())
        })
}

/// The client's address: the connection's peer, or the last hop of `X-Forwarded-For` when
/// the node is told to trust its proxy.
pub fn client_ip_of(
    trust_forwarded_for: bool,
    peer: Option<ClientAddr>,
    forwarded: Option<&str>,
) -> IpAddr {
    let forwarded = forwarded
        .filter(|_| trust_forwarded_for)
        .and_then(|list| list.rsplit(',').next()?.trim().parse().ok());
    forwarded
        .or(peer.map(|ClientAddr(addr)| addr.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
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

/// A caller with a login token, or with an API key that has `scope` (403
/// `insufficient_scope` otherwise).
pub fn scoped_caller(
    state: Arc<AppState>,
    scope: Scope,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(state).and_then(move |caller: Caller| async move {
        caller
            .require(scope)
            .map(|()| caller)
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
    // Auth schemes are case-insensitive (RFC 9110 §11.1): `BEARER x` is `Bearer x`.
    let bearer = authorization.as_deref().and_then(|value| {
        let (scheme, credential) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| credential.trim())
    });
    if let Some(key) = api_key_header.as_deref().map(str::trim) {
        return identify_key(state, key).await;
    }
    match bearer {
        Some(credential) if api_key::looks_like_key(credential) => {
            identify_key(state, credential).await
        }
        Some(token) => identify_token(state, token).await.map(|(caller, _)| caller),
        None => Err(ApiError::Unauthorized(
            "missing_credentials",
            "send a login token or API key in the Authorization header",
        )),
    }
}

/// The caller an API key names, if the key is live, its account enabled, and the request
/// within the account's and the key's request rates (429 `rate_limited` otherwise).
pub(super) async fn identify_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    let found = api_keys::authenticate(&state.pool, &api_key::digest(key), state.account_rate)
        .await?
        .ok_or(ApiError::Unauthorized(
            "invalid_api_key",
            "the API key is unknown or has been revoked",
        ))?;
    if found.user.disabled {
        return Err(ApiError::AccountDisabled);
    }
    if !found.rate.allowed {
        return Err(ApiError::RateLimited(found.rate));
    }
    rate_headers::record(found.rate);
    Ok(Caller {
        user: found.user,
        credential: Credential::ApiKey {
            key_id: found.key.id,
            scopes: found.key.scopes,
        },
    })
}

/// The caller a login token names, if the token is valid and still current for an enabled
/// account; and when the token expires.
pub(super) async fn identify_token(
    state: &AppState,
    token: &str,
) -> Result<(Caller, chrono::DateTime<chrono::Utc>), ApiError> {
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
    let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
    Ok((
        Caller {
            user,
            credential: Credential::Token,
        },
        expires_at,
    ))
}
