//! The one place where failures become HTTP answers: every error is
//! `{"error": {"code": "...", "message": "..."}}` with the status that fits.

use std::{borrow::Cow, convert::Infallible, time::Duration};

use serde::Serialize;
use warp::{
    Rejection, Reply,
    http::{
        HeaderValue, StatusCode,
        header::{CONNECTION, RETRY_AFTER},
    },
    reply::Response,
};

use crate::{
    auth::{password::PasswordError, request_limit::RateStatus, scope::Scope},
    db::DbError,
    users::UserError,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation {
        field: Cow<'static, str>,
        message: String,
    },
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body does not match what this endpoint takes: {0}")]
    InvalidBody(String),
    #[error("{0}")]
    Unauthorized(&'static str, &'static str),
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(
        "this password reset link does not work: it was used, it expired, or it is wrong; ask for a new one"
    )]
    InvalidResetToken,
    #[error(
        "this server sends no email (no smtp.url is configured): ask an admin to reset your password"
    )]
    EmailNotConfigured,
    #[error("too many attempts; retry in {} s", .0.as_secs().max(1))]
    TooManyRequests(Duration),
    /// Over the request rate of the account or of the API key (`RateLimit-*` headers).
    #[error(
        "too many requests for this account or API key; retry in {} s",
        .0.retry_after_secs
    )]
    RateLimited(RateStatus),
    /// An API key used outside its scopes.
    #[error("this API key does not have the {0} scope this request needs")]
    InsufficientScope(Scope),
    #[error("request body is larger than this server accepts")]
    PayloadTooLarge,
    #[error("send the request body as JSON, with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("{0}")]
    BadRequest(String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the server is busy; retry shortly")]
    Busy,
    /// The node running the session did not answer; whether it acted is unknown.
    #[error("{0}")]
    OwnerUnreachable(String),
    /// A send over the plan's message quota; `resets_at` is when one passes again.
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        resets_at: chrono::DateTime<chrono::Utc>,
    },
    /// One more API key or webhook endpoint than the plan allows.
    #[error("{0}")]
    PlanLimitReached(String),
    /// A Stripe webhook whose signature does not check out.
    #[error("{0}")]
    InvalidSignature(String),
    #[error("billing is not configured on this server")]
    BillingDisabled,
    /// Stripe failed or answered something unusable.
    #[error("{0}")]
    BillingProvider(String),
    #[error("internal error")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

/// Every error answer's body (the OpenAPI document's `ErrorBody`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ErrorDetail<'a> {
    /// What went wrong, for programs: `validation_failed`, `invalid_token`, `not_found`, …
    code: &'a str,
    /// What went wrong, for people.
    message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// The scope the API key lacks, for `insufficient_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    /// For `quota_exceeded`: when a send passes again (also as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation { .. } => (StatusCode::BAD_REQUEST, "validation_failed"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, code),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
            ApiError::InvalidResetToken => (StatusCode::BAD_REQUEST, "invalid_reset_token"),
            ApiError::EmailNotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "password_reset_unavailable",
            ),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::TooManyRequests(_) | ApiError::RateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::OwnerUnreachable(_) => (StatusCode::SERVICE_UNAVAILABLE, "owner_unreachable"),
            ApiError::QuotaExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
            ApiError::PlanLimitReached(_) => (StatusCode::FORBIDDEN, "plan_limit_reached"),
            ApiError::BillingDisabled => (StatusCode::NOT_FOUND, "billing_disabled"),
            ApiError::InvalidSignature(_) => (StatusCode::BAD_REQUEST, "invalid_signature"),
            ApiError::BillingProvider(_) => (StatusCode::BAD_GATEWAY, "billing_provider_error"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn validation(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Unauthorized(_, message) => (*message).to_owned(),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            ApiError::Validation { field, .. } => Some(field.as_ref()),
            _ => None,
        };
        let scope = match &self {
            ApiError::InsufficientScope(scope) => Some(scope.as_str()),
            _ => None,
        };
        let resets_at = match &self {
            ApiError::QuotaExceeded { resets_at, .. } => Some(*resets_at),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
                scope,
                resets_at,
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), status).into_response();
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still be on its way: do not read it as the next request.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, ApiError::Busy | ApiError::OwnerUnreachable(_)) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited(status) = &self {
            status.insert_headers(response.headers_mut());
        }
        if let ApiError::QuotaExceeded { resets_at, .. } = &self {
            let seconds = (*resets_at - chrono::Utc::now())
                .num_seconds()
                .max(1)
                .to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        if let ApiError::BillingProvider(detail) = &self {
            tracing::warn!(%detail, "Stripe request failed");
        }
        if let ApiError::TooManyRequests(retry_after) = self {
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<botwave_actors::SessionError> for ApiError {
    fn from(error: botwave_actors::SessionError) -> Self {
        use botwave_actors::SessionError;
        match error {
            SessionError::UnknownUser => ApiError::NotFound("user"),
            SessionError::OwnerUnreachable => ApiError::OwnerUnreachable(error.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Pool(_) => ApiError::Unavailable("the database is unavailable".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::EmailTaken => ApiError::EmailTaken,
            UserError::Db(error) => error.into(),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(error: PasswordError) -> Self {
        match error {
            PasswordError::Busy => ApiError::Busy,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Turns a handler's outcome into a response; used by every route.
pub fn respond<T: Reply>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    }
}

/// Answers every rejection a filter produced (routing, auth, body limits) in the JSON shape.
pub async fn handle_rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(error) = rejection.find::<ApiError>() {
        return Ok(error.clone().into_response());
    } else if rejection.is_not_found() {
        ApiError::NotFound("route")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        // No Content-Length: an empty body, or a chunked one whose size cannot be checked upfront.
        ApiError::MalformedJson(
            "the request has no body; send a JSON object with a Content-Length".into(),
        )
    } else if let Some(missing) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::BadRequest(format!("missing header {}", missing.name()))
    } else if let Some(invalid) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest(format!("invalid header {}", invalid.name()))
    } else if let Some(query) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest(query.to_string())
    } else if rejection
        .find::<warp::ws::MissingConnectionUpgrade>()
        .is_some()
    {
        // A plain request to the websocket route (found by the contract fuzzer: it was a 500).
        ApiError::BadRequest(
            "this route takes a websocket upgrade (Connection: upgrade, Upgrade: websocket)".into(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(method_not_allowed());
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

/// A complete HTTP/1.1 error answer as bytes, for the few answers written straight to a socket
/// (connections over the cap, requests hyper could not parse): the same JSON shape as every
/// other error, and the connection closes after it.
pub fn raw_error_response(status: StatusCode, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_owned(),
            field: None,
            scope: None,
            resets_at: None,
        },
    })
    .unwrap_or_default();
    let retry_after = if status == StatusCode::SERVICE_UNAVAILABLE {
        "retry-after: 1\r\n"
    } else {
        ""
    };
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\n{retry_after}\
         connection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

fn method_not_allowed() -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "method_not_allowed",
            message: "this route does not take that method".into(),
            field: None,
            scope: None,
            resets_at: None,
        },
    };
    warp::reply::with_status(warp::reply::json(&body), StatusCode::METHOD_NOT_ALLOWED)
        .into_response()
}
