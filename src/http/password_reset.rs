//! `POST /api/auth/forgot-password` and `POST /api/auth/reset-password`: a user who forgot
//! their password asks for a link by email, and sets a new password with it.
//!
//! The first route answers the same, at once, for any well-formed email: the lookup, the link
//! and the email happen after the answer, so neither its content nor its timing tells whether
//! an account exists.

use std::{net::IpAddr, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{client_ip, json_body, with_state},
    routing::Route,
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ForgotPassword {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    /// The `token` of the emailed link.
    token: String,
    new_password: String,
}

/// An answer that only says what happened.
#[derive(Serialize, ToSchema)]
struct Notice {
    message: &'static str,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_forgot>(|at| {
            at.and(with_state(state.clone()))
                .and(client_ip(state.trust_forwarded_for))
                .and(json_body(state.body_limits))
                .then(|state, ip, body| async move { respond(forgot(state, ip, body).await) })
                .boxed()
        }),
        Route::new::<__path_reset>(|at| {
            at.and(with_state(state.clone()))
                .and(client_ip(state.trust_forwarded_for))
                .and(json_body(state.body_limits))
                .then(|state, ip, body| async move { respond(reset(state, ip, body).await) })
                .boxed()
        }),
    ]
}

/// Ask for a password reset link
///
/// The same answer, at once, whether or not the account exists; an enabled account is
/// emailed a single-use link that expires.
#[utoipa::path(post, path = "/api/auth/forgot-password", tag = "account", operation_id = "forgot_password",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "If the account exists, a link is on its way", body = Notice),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`password_reset_unavailable`: this server sends no email", body = ErrorBody),
    ))]
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
        warp::reply::json(&Notice {
            message: "if an account with this email exists, a link to reset its password is on its way",
        }),
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

/// Set a new password with an emailed link
///
/// Every login token and every other reset link of the account stops working; API keys stay.
#[utoipa::path(post, path = "/api/auth/reset-password", tag = "account", operation_id = "reset_password",
    request_body = ResetPassword,
    responses(
        (status = 200, description = "Changed: log in with the new password", body = Notice),
        (status = 400, description = "`invalid_reset_token` (used, expired or wrong), or the new password breaks the rules", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ))]
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
    Ok(warp::reply::json(&Notice {
        message: "your password was changed: log in with the new one",
    }))
}
