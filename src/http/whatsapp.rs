//! `/api/whatsapp/*`: link the caller's WhatsApp account (initialize, then scan the QR code,
//! or ask for a link code to type on the phone), watch its state, and unlink it.

use std::sync::Arc;

use base64::Engine;
use botwave_actors::sessions::{self, SessionState, SessionStatus};
use botwave_actors::{PairCodeRefusal, SessionError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, json_body, scoped_caller, session_caller, with_state},
    routing::Route,
};
use crate::{auth::scope::Scope, domain::PhoneNumber, qr, state::AppState};

#[derive(Deserialize)]
struct QrQuery {
    format: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct PairCodeRequest {
    /// The number of the phone that has WhatsApp, in international form.
    phone: String,
}

/// The caller's WhatsApp session as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    state: SessionState,
    /// The linked number, digits only.
    phone: Option<String>,
    /// The name the phone's owner set in WhatsApp.
    push_name: Option<String>,
    connected_since: Option<DateTime<Utc>>,
    restart_count: i32,
    last_error: Option<String>,
    /// A QR code waits to be scanned (`GET /api/whatsapp/qr`).
    qr_available: bool,
    /// A linked device is stored: starting the session logs in without a QR code.
    paired: bool,
    /// `None` for an account that never started a session.
    updated_at: Option<DateTime<Utc>>,
}

impl From<&SessionStatus> for SessionView {
    fn from(status: &SessionStatus) -> Self {
        SessionView {
            state: status.state,
            phone: status.phone.clone(),
            push_name: status.push_name.clone(),
            connected_since: status.connected_since,
            restart_count: status.restart_count,
            last_error: status.last_error.clone(),
            // The QR string has its own endpoint (with images); here only whether there is one.
            qr_available: status.qr_code.is_some(),
            paired: status.paired,
            updated_at: Some(status.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct QrCode {
    /// The string the QR code encodes.
    code: String,
    expires_at: Option<DateTime<Utc>>,
    /// The QR code as SVG markup.
    svg: String,
    /// The QR code as a PNG image, base64.
    png_base64: String,
}

#[derive(Serialize, ToSchema)]
struct PairCode {
    /// 8 characters to type on the phone (shown as `ABCD-EFGH`).
    code: String,
    expires_at: DateTime<Utc>,
    /// The number it is for, digits only.
    phone: String,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_initialize>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(|state, caller| async move { respond(initialize(state, caller).await) })
                .boxed()
        }),
        Route::new::<__path_status>(|at| {
            at.and(with_state(state.clone()))
                .and(scoped_caller(state.clone(), Scope::SessionRead))
                .then(|state, caller| async move { respond(status(state, caller).await) })
                .boxed()
        }),
        Route::new::<__path_qr_code>(|at| {
            at.and(with_state(state.clone()))
                .and(scoped_caller(state.clone(), Scope::SessionRead))
                .and(warp::query::<QrQuery>())
                .then(|state, caller, query| async move { respond(qr_code(state, caller, query).await) })
                .boxed()
        }),
        Route::new::<__path_pair_code>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .and(json_body(state.body_limits))
                .then(|state, caller, body| async move { respond(pair_code(state, caller, body).await) })
                .boxed()
        }),
        Route::new::<__path_disconnect>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(|state, caller| async move { respond(disconnect(state, caller).await) })
                .boxed()
        }),
    ]
}

/// The caller's session as the API shows it; never-initialized accounts are `idle`.
pub async fn current_status(state: &AppState, caller: &Caller) -> Result<SessionView, ApiError> {
    let status = sessions::status(&state.pool, caller.user.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(match status {
        Some(status) => SessionView::from(&status),
        None => SessionView {
            state: SessionState::Idle,
            phone: None,
            push_name: None,
            connected_since: None,
            restart_count: 0,
            last_error: None,
            qr_available: false,
            paired: false,
            updated_at: None,
        },
    })
}

/// Start the WhatsApp session
///
/// Starts (or resumes) the caller's session: it connects, and an unlinked account gets a QR
/// code (`state` goes `connecting` → `qr`).
#[utoipa::path(post, path = "/api/whatsapp/initialize", tag = "whatsapp", operation_id = "initialize_whatsapp",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Starting", body = SessionView),
        (status = 503, description = "The session could not be started now", body = ErrorBody),
    ))]
async fn initialize(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let status = state.sessions.initialize(caller.user.id).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&SessionView::from(&status)),
        StatusCode::ACCEPTED,
    ))
}

/// The WhatsApp session's state
///
/// API keys need the `session:read` scope.
#[utoipa::path(get, path = "/api/whatsapp/status", tag = "whatsapp", operation_id = "whatsapp_status",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The session", body = SessionView)))]
async fn status(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    Ok(warp::reply::json(&current_status(&state, &caller).await?))
}

/// The QR code to scan
///
/// As JSON (with SVG markup and a base64 PNG), or with `format=png` or `format=svg` the image
/// itself. API keys need the `session:read` scope.
#[utoipa::path(get, path = "/api/whatsapp/qr", tag = "whatsapp", operation_id = "whatsapp_qr_code",
    security(("bearer" = []), ("api_key" = [])),
    params(("format" = Option<QrFormat>, Query, description = "`json` (default), `png` or `svg`")),
    responses(
        (status = 200, description = "The QR code", content(
            (QrCode = "application/json"),
            (Vec<u8> = "image/png"),
            (String = "image/svg+xml"),
        )),
        (status = 404, description = "No QR code (yet): initialize first, then retry in a moment", body = ErrorBody),
        (status = 409, description = "`already_connected`", body = ErrorBody),
    ))]
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
            Ok(warp::reply::json(&QrCode {
                svg: qr::svg(&code).map_err(render_error)?,
                png_base64: base64::engine::general_purpose::STANDARD.encode(png),
                code,
                expires_at,
            })
            .into_response())
        }
        Some(_) => Err(ApiError::validation(
            "format",
            "format must be json, png or svg",
        )),
    }
}

/// Link by phone number
///
/// Starts the session if needed and answers the link code to type on the phone (WhatsApp →
/// Linked devices → Link a device → Link with phone number instead).
#[utoipa::path(post, path = "/api/whatsapp/pair-code", tag = "whatsapp", operation_id = "whatsapp_pair_code",
    security(("bearer" = [])),
    request_body = PairCodeRequest,
    responses(
        (status = 200, description = "The link code", body = PairCode),
        (status = 409, description = "`already_connected` or `pair_code_in_progress`", body = ErrorBody),
        (status = 503, description = "WhatsApp refused, or a newer request replaced this one", body = ErrorBody),
    ))]
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
    Ok(warp::reply::json(&PairCode {
        code: code.code,
        expires_at: code.expires_at,
        phone: phone.digits().to_owned(),
    }))
}

fn already_linked() -> ApiError {
    ApiError::Conflict(
        "already_connected",
        "this account's WhatsApp is already linked".into(),
    )
}

/// Unlink WhatsApp
///
/// Logs the linked device out of WhatsApp and forgets it.
#[utoipa::path(post, path = "/api/whatsapp/disconnect", tag = "whatsapp", operation_id = "disconnect_whatsapp",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unlinked", body = SessionView),
        (status = 503, description = "The session could not be reached", body = ErrorBody),
    ))]
async fn disconnect(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    state.sessions.disconnect(caller.user.id).await?;
    Ok(warp::reply::json(&current_status(&state, &caller).await?))
}

/// The forms `GET /api/whatsapp/qr` answers in.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only documents the `format` parameter, which the handler reads as text.
pub(super) enum QrFormat {
    Json,
    Png,
    Svg,
}
