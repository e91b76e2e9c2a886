//! `/api/auth/*`: registering, logging in, who am I, and changing the password.

use std::{net::IpAddr, sync::Arc};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, Credential, caller, client_ip, json_body, session_caller, with_state},
    routing::Route,
};
use crate::{
    api_keys,
    auth::{password, scope::Scope},
    domain::{Email, NewPassword, Role},
    state::AppState,
    users::{self, User},
};

#[derive(Deserialize, ToSchema)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
struct PasswordChange {
    current_password: String,
    new_password: String,
    /// Revoke every API key of the account along with the password.
    #[serde(default)]
    revoke_api_keys: bool,
}

/// A login token and the account it is for: what registering, logging in and changing the
/// password answer.
#[derive(Serialize, ToSchema)]
pub struct Session {
    token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    user: User,
}

#[derive(Serialize, ToSchema)]
struct PasswordChanged {
    #[serde(flatten)]
    session: Session,
    /// API keys revoked with this change.
    api_keys_revoked: u64,
    /// API keys that still work.
    api_keys_active: i64,
}

#[derive(Serialize, ToSchema)]
struct Me {
    user: User,
    authenticated_with: AuthenticatedWith,
}

/// The credential the request came with.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AuthenticatedWith {
    Token,
    /// An API key, and what it may do.
    ApiKey {
        key_id: Uuid,
        scopes: Vec<Scope>,
    },
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_register>(|at| {
            at.and(with_state(state.clone()))
                .and(client_ip(state.trust_forwarded_for))
                .and(json_body(state.body_limits))
                .then(|state, ip, body| async move { respond(register(state, ip, body).await) })
                .boxed()
        }),
        Route::new::<__path_login>(|at| {
            at.and(with_state(state.clone()))
                .and(client_ip(state.trust_forwarded_for))
                .and(json_body(state.body_limits))
                .then(|state, ip, body| async move { respond(login(state, ip, body).await) })
                .boxed()
        }),
        Route::new::<__path_me>(|at| {
            at.and(caller(state.clone()))
                .map(|caller: Caller| me(caller).into_response())
                .boxed()
        }),
        Route::new::<__path_change_password>(|at| {
            at.and(with_state(state.clone()))
                .and(client_ip(state.trust_forwarded_for))
                .and(session_caller(state.clone()))
                .and(json_body(state.body_limits))
                .then(|state, ip, caller, body| async move {
                    respond(change_password(state, ip, caller, body).await)
                })
                .boxed()
        }),
    ]
}

/// A fresh login token for `user`.
fn session(state: &AppState, user: User) -> Result<Session, ApiError> {
    let issued = state
        .tokens
        .issue(user.id, user.role, user.token_version)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(Session {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
        user,
    })
}

/// Register an account
///
/// Creates a `user` account and answers a login token for it.
#[utoipa::path(post, path = "/api/auth/register", tag = "account", operation_id = "register",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered and logged in", body = Session),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this address", body = ErrorBody),
    ))]
async fn register(
    state: Arc<AppState>,
    ip: IpAddr,
    body: Credentials,
) -> Result<impl Reply, ApiError> {
    state
        .login_by_ip
        .check(&ip)
        .map_err(ApiError::TooManyRequests)?;
    let email = Email::parse(&body.email).map_err(|m| ApiError::validation("email", m))?;
    let new_password =
        NewPassword::parse(&body.password).map_err(|m| ApiError::validation("password", m))?;
    let hash = password::hash(new_password.expose()).await?;
    let user = users::create(&state.pool, &email, &hash, Role::User).await?;
    tracing::info!(user = %user.id, "account registered");
    Ok(warp::reply::with_status(
        warp::reply::json(&session(&state, user)?),
        StatusCode::CREATED,
    ))
}

/// Log in
#[utoipa::path(post, path = "/api/auth/login", tag = "account", operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = Session),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts", body = ErrorBody),
    ))]
async fn login(
    state: Arc<AppState>,
    ip: IpAddr,
    body: Credentials,
) -> Result<impl Reply, ApiError> {
    // A malformed email cannot belong to an account: same answer as a wrong password.
    let email = Email::parse(&body.email).map_err(|_| ApiError::InvalidCredentials)?;
    let account = users::find_by_email(&state.pool, &email).await?;
    let stored = match &account {
        Some((_, hash)) => hash.as_str(),
        None => password::dummy_hash().await,
    };
    let matches = check_password(&state, ip, email.as_str(), &body.password, stored).await?;
    let Some((user, _)) = account.filter(|_| matches) else {
        return Err(ApiError::InvalidCredentials);
    };
    if user.disabled {
        return Err(ApiError::AccountDisabled);
    }
    Ok(warp::reply::json(&session(&state, user)?))
}

/// Checks a guess of `email`'s password from `ip` under the guessing limits: per address, per
/// account and address (so that a guesser cannot use up the owner's attempts), and a growing
/// delay per account after many failures from anywhere. Logins and current-password checks
/// both come through here.
async fn check_password(
    state: &AppState,
    ip: IpAddr,
    email: &str,
    guess: &str,
    stored: &str,
) -> Result<bool, ApiError> {
    let email = email.to_owned();
    state
        .login_by_ip
        .check(&ip)
        .map_err(ApiError::TooManyRequests)?;
    state
        .login_by_email
        .check(&(email.clone(), ip))
        .map_err(ApiError::TooManyRequests)?;
    state
        .login_failures
        .check(&email)
        .map_err(ApiError::TooManyRequests)?;
    let matches = password::verify(guess, stored).await?;
    if matches {
        state.login_failures.succeeded(&email);
    } else {
        state.login_failures.failed(&email);
    }
    Ok(matches)
}

/// The caller's account
///
/// Works with a login token or an API key (of any scope), and says which one the request came
/// with: for a key, its scopes.
#[utoipa::path(get, path = "/api/auth/me", tag = "account", operation_id = "me",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 429, description = "`rate_limited`: over the account's or the API key's request rate (`Retry-After`, `RateLimit-*`)", body = ErrorBody),
    ))]
fn me(caller: Caller) -> impl Reply {
    let authenticated_with = match caller.credential {
        Credential::Token => AuthenticatedWith::Token,
        Credential::ApiKey { key_id, scopes } => AuthenticatedWith::ApiKey { key_id, scopes },
    };
    warp::reply::json(&Me {
        user: caller.user,
        authenticated_with,
    })
}

/// Change the password
///
/// Every older login token (and websocket) stops working; the answer carries a new token. API
/// keys stay unless `revoke_api_keys` is true.
#[utoipa::path(post, path = "/api/auth/password", tag = "account", operation_id = "change_password",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; a fresh login token", body = PasswordChanged),
        (status = 404, description = "The account is gone", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong current passwords", body = ErrorBody),
    ))]
async fn change_password(
    state: Arc<AppState>,
    ip: IpAddr,
    caller: Caller,
    body: PasswordChange,
) -> Result<impl Reply, ApiError> {
    let current = users::password_hash(&state.pool, caller.user.id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    if !check_password(
        &state,
        ip,
        &caller.user.email,
        &body.current_password,
        &current,
    )
    .await?
    {
        return Err(ApiError::validation(
            "current_password",
            "current password is wrong",
        ));
    }
    let new_password = NewPassword::parse(&body.new_password)
        .map_err(|m| ApiError::validation("new_password", m))?;
    let hash = password::hash(new_password.expose()).await?;
    let (user, revoked) =
        users::set_password(&state.pool, caller.user.id, &hash, body.revoke_api_keys)
            .await?
            .ok_or(ApiError::NotFound("account"))?;
    // API keys outlive a password change unless the owner asks; say how many are still live
    // so the dashboard can offer to revoke them.
    let remaining = api_keys::count(&state.pool, user.id).await?;
    // Every earlier token is void now; hand the caller a fresh one so this browser stays in.
    Ok(warp::reply::json(&PasswordChanged {
        session: session(&state, user)?,
        api_keys_revoked: revoked,
        api_keys_active: remaining,
    }))
}
