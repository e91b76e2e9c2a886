//! `/api/auth/*`: registering, logging in, who am I, and changing the password.

use std::{net::IpAddr, sync::Arc};

use serde::Deserialize;
use serde_json::json;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{Caller, Credential, caller, client_ip, json_body, session_caller, with_state},
};
use crate::{
    api_keys,
    auth::password,
    domain::{Email, NewPassword, Role},
    state::AppState,
    users::{self, User},
};

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
    /// Revoke every API key of the account along with the password.
    #[serde(default)]
    revoke_api_keys: bool,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let register = warp::path!("api" / "auth" / "register")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.trust_forwarded_for))
        .and(json_body(state.body_limits))
        .then(|state, ip, body| async move { respond(register(state, ip, body).await) });
    let login = warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.trust_forwarded_for))
        .and(json_body(state.body_limits))
        .then(|state, ip, body| async move { respond(login(state, ip, body).await) });
    let me = warp::path!("api" / "auth" / "me")
        .and(warp::get())
        .and(caller(state.clone()))
        .map(|caller: Caller| me(caller));
    let change_password = warp::path!("api" / "auth" / "password")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.trust_forwarded_for))
        .and(session_caller(state.clone()))
        .and(json_body(state.body_limits))
        .then(|state, ip, caller, body| async move {
            respond(change_password(state, ip, caller, body).await)
        });
    register.or(login).or(me).or(change_password)
}

/// A fresh login token for `user`, with `extra` fields merged into the answer.
fn session_reply(
    state: &AppState,
    user: &User,
    status: StatusCode,
    extra: serde_json::Value,
) -> Result<impl Reply + use<>, ApiError> {
    let issued = state
        .tokens
        .issue(user.id, user.role, user.token_version)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut body = json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": issued.expires_at,
        "user": user,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    Ok(warp::reply::with_status(warp::reply::json(&body), status))
}

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
    session_reply(&state, &user, StatusCode::CREATED, json!({}))
}

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
    session_reply(&state, &user, StatusCode::OK, json!({}))
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

fn me(caller: Caller) -> impl Reply {
    let via = match caller.credential {
        Credential::Token => json!({ "type": "token" }),
        Credential::ApiKey { key_id } => json!({ "type": "api_key", "key_id": key_id }),
    };
    warp::reply::json(&json!({ "user": caller.user, "authenticated_with": via }))
}

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
    session_reply(
        &state,
        &user,
        StatusCode::OK,
        json!({ "api_keys_revoked": revoked, "api_keys_active": remaining }),
    )
}
