//! `POST /api/auth/forgot-password` and `POST /api/auth/reset-password`: a user who forgot
//! their password asks for a link by email, and sets a new password with it.
//!
//! The first route answers the same, at once, for any well-formed email: the lookup, the link
//! and the email happen after the answer, so neither its content nor its timing tells whether
//! an account exists.

use std::{net::IpAddr, sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::json;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{client_ip, json_body, with_state},
};
use crate::{
    auth::password,
    domain::{Email, NewPassword},
    mail::Email as Mail,
    password_reset,
    state::AppState,
};

/// Reset requests (asking for a link, or using one) per client address per window.
pub const REQUESTS_PER_IP: u32 = 10;
/// Links asked for one email address per window, on this node (the database caps what an
/// account is sent across nodes: [`password_reset::MAX_LINKS_PER_HOUR`]).
pub const REQUESTS_PER_EMAIL: u32 = 3;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgotPassword {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    token: String,
    new_password: String,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let forgot = warp::path!("api" / "auth" / "forgot-password")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.trust_forwarded_for))
        .and(json_body(state.body_limits))
        .then(|state, ip, body| async move { respond(forgot(state, ip, body).await) });
    let reset = warp::path!("api" / "auth" / "reset-password")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_ip(state.trust_forwarded_for))
        .and(json_body(state.body_limits))
        .then(|state, ip, body| async move { respond(reset(state, ip, body).await) });
    forgot.or(reset)
}

async fn forgot(
    state: Arc<AppState>,
    ip: IpAddr,
    body: ForgotPassword,
) -> Result<impl Reply, ApiError> {
    if state.mailer.is_off() {
        return Err(ApiError::EmailNotConfigured);
    }
    state
        .reset_by_ip
        .check(&ip)
        .map_err(ApiError::TooManyRequests)?;
    let email = Email::parse(&body.email).map_err(|m| ApiError::validation("email", m))?;
    state
        .reset_by_email
        .check(&email.as_str().to_owned())
        .map_err(ApiError::TooManyRequests)?;
    tokio::spawn(send_link(state, email));
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({
            "message": "if an account with this email exists, a link to reset its password is on its way",
        })),
        StatusCode::ACCEPTED,
    ))
}

/// Issues a link for `email`'s account, if there is one, and mails it. Runs after the answer:
/// failures are logged (never the link), not reported to whoever asked.
async fn send_link(state: Arc<AppState>, email: Email) {
    let token = match password_reset::issue(&state.pool, &email, state.reset_ttl).await {
        Ok(Some(token)) => token,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot issue a password reset link");
            return;
        }
    };
    let Ok(to) = email.as_str().parse() else {
        tracing::warn!("an account's email is not a mailbox lettre accepts; no reset link sent");
        return;
    };
    let link = format!("{}/reset-password?token={token}", state.public_url);
    let minutes = state.reset_ttl.as_secs() / 60;
    let mail = Mail {
        to,
        subject: "Reset your botwave password".into(),
        body: format!(
            "Someone (hopefully you) asked to reset the password of your botwave account.\n\n\
             Choose a new password here, within {minutes} minutes:\n\n{link}\n\n\
             The link works once. If you did not ask for it, ignore this email: your password \
             stays as it is.\n"
        ),
    };
    match state.mailer.send(mail).await {
        Ok(()) => tracing::info!("password reset link sent"),
        Err(error) => tracing::warn!(%error, "cannot send a password reset link"),
    }
}

async fn reset(
    state: Arc<AppState>,
    ip: IpAddr,
    body: ResetPassword,
) -> Result<impl Reply, ApiError> {
    state
        .reset_by_ip
        .check(&ip)
        .map_err(ApiError::TooManyRequests)?;
    let new_password = NewPassword::parse(&body.new_password)
        .map_err(|m| ApiError::validation("new_password", m))?;
    let token = body.token.trim();
    if token.is_empty() || token.len() > 128 {
        return Err(ApiError::InvalidResetToken);
    }
    let hash = password::hash(new_password.expose()).await?;
    let user = password_reset::redeem(&state.pool, token, &hash)
        .await?
        .ok_or(ApiError::InvalidResetToken)?;
    tracing::info!(user = %user.id, "password reset by email link");
    Ok(warp::reply::json(&json!({
        "message": "your password was changed: log in with the new one",
    })))
}
