//! `/api/whatsapp/*`: link the caller's WhatsApp account (initialize, then scan the QR code,
//! or ask for a link code to type on the phone), watch its state, and unlink it.

use std::sync::Arc;

use base64::Engine;
use botwave_actors::sessions::{self, SessionState, SessionStatus};
use botwave_actors::{PairCodeRefusal, SessionError};
use serde::Deserialize;
use serde_json::json;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{Caller, caller, json_body, session_caller, with_state},
};
use crate::{domain::PhoneNumber, qr, state::AppState};

#[derive(Deserialize)]
struct QrQuery {
    format: Option<String>,
}

#[derive(Deserialize)]
struct PairCodeRequest {
    phone: String,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let initialize = warp::path!("api" / "whatsapp" / "initialize")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state.clone()))
        .then(|state, caller| async move { respond(initialize(state, caller).await) });
    let status = warp::path!("api" / "whatsapp" / "status")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(caller(state.clone()))
        .then(|state, caller| async move { respond(status(state, caller).await) });
    let qr = warp::path!("api" / "whatsapp" / "qr")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(caller(state.clone()))
        .and(warp::query::<QrQuery>())
        .then(|state, caller, query| async move { respond(qr_code(state, caller, query).await) });
    let pair_code = warp::path!("api" / "whatsapp" / "pair-code")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state.clone()))
        .and(json_body(state.body_limits))
        .then(|state, caller, body| async move { respond(pair_code(state, caller, body).await) });
    let disconnect = warp::path!("api" / "whatsapp" / "disconnect")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state))
        .then(|state, caller| async move { respond(disconnect(state, caller).await) });
    initialize.or(status).or(qr).or(pair_code).or(disconnect)
}

/// The caller's session as the API shows it; never-initialized accounts are `idle`.
pub async fn current_status(
    state: &AppState,
    caller: &Caller,
) -> Result<serde_json::Value, ApiError> {
    let status = sessions::status(&state.pool, caller.user.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(match status {
        Some(status) => status_json(&status),
        None => json!({ "state": SessionState::Idle, "paired": false, "restart_count": 0 }),
    })
}

fn status_json(status: &SessionStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    // The QR string has its own endpoint (with images); here only whether there is one.
    if let Some(object) = value.as_object_mut() {
        object.remove("qr_code");
        object.insert("qr_available".into(), json!(status.qr_code.is_some()));
    }
    value
}

async fn initialize(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let status = state.sessions.initialize(caller.user.id).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&status_json(&status)),
        StatusCode::ACCEPTED,
    ))
}

async fn status(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    Ok(warp::reply::json(&current_status(&state, &caller).await?))
}

async fn qr_code(
    state: Arc<AppState>,
    caller: Caller,
    query: QrQuery,
) -> Result<warp::reply::Response, ApiError> {
    let status = sessions::status(&state.pool, caller.user.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (code, expires_at) = match status {
        Some(SessionStatus {
            qr_code: Some(code),
            qr_expires_at,
            ..
        }) => (code, qr_expires_at),
        Some(status) if status.state == SessionState::Connected => {
            return Err(already_linked());
        }
        _ => {
            return Err(ApiError::NotFound(
                "QR code (POST /api/whatsapp/initialize first, then retry in a moment)",
            ));
        }
    };
    let render_error = |e: qr::QrError| ApiError::Internal(e.to_string());
    match query.format.as_deref() {
        Some("png") => Ok(warp::reply::with_header(
            qr::png(&code).map_err(render_error)?,
            "content-type",
            "image/png",
        )
        .into_response()),
        Some("svg") => Ok(warp::reply::with_header(
            qr::svg(&code).map_err(render_error)?,
            "content-type",
            "image/svg+xml",
        )
        .into_response()),
        None | Some("json") => {
            let png = qr::png(&code).map_err(render_error)?;
            Ok(warp::reply::json(&json!({
                "code": code,
                "expires_at": expires_at,
                "svg": qr::svg(&code).map_err(render_error)?,
                "png_base64": base64::engine::general_purpose::STANDARD.encode(png),
            }))
            .into_response())
        }
        Some(_) => Err(ApiError::validation(
            "format",
            "format must be json, png or svg",
        )),
    }
}

/// Starts the session if needed and answers the link code to type on the phone whose
/// number is given (WhatsApp → Linked devices → Link with phone number instead).
async fn pair_code(
    state: Arc<AppState>,
    caller: Caller,
    body: PairCodeRequest,
) -> Result<impl Reply, ApiError> {
    let phone = PhoneNumber::parse(&body.phone).map_err(|m| ApiError::validation("phone", m))?;
    let current = sessions::status(&state.pool, caller.user.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if current.is_some_and(|status| status.paired || status.state == SessionState::Connected) {
        return Err(already_linked());
    }
    let code = state
        .sessions
        .pair_code(caller.user.id, phone.digits())
        .await
        .map_err(|error| match error {
            SessionError::PairCode(PairCodeRefusal::AlreadyLinked) => already_linked(),
            SessionError::PairCode(refusal @ PairCodeRefusal::InProgress) => {
                ApiError::Conflict("pair_code_in_progress", refusal.to_string())
            }
            other => other.into(),
        })?;
    Ok(warp::reply::json(&json!({
        "code": code.code,
        "expires_at": code.expires_at,
        "phone": phone.digits(),
    })))
}

fn already_linked() -> ApiError {
    ApiError::Conflict(
        "already_connected",
        "this account's WhatsApp is already linked".into(),
    )
}

async fn disconnect(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    state.sessions.disconnect(caller.user.id).await?;
    Ok(warp::reply::json(&current_status(&state, &caller).await?))
}
