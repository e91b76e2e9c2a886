//! Sending and the message log: `POST /api/messages/send` (dashboard, login token),
//! `POST|GET /api/send` (integrations, API key) and `GET /api/messages[/{id}]` (with
//! `?direction=in`, the messages contacts sent to the linked number).
//!
//! A send is stored as `queued` first and answered 202 with its id; the owning session sends it
//! and moves it along sent → delivered → read (or failed). An `Idempotency-Key` header makes a
//! retried request return the first one's message instead of sending twice.

use std::{collections::HashMap, sync::Arc};

use botwave_actors::{
    inbound::InboundMessage,
    outbox::{self, Enqueued, Message, MessageSource, MessageStatus, NewMessage, QuotaPeriod},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, Credential, caller, json_body, scoped_caller, session_caller, with_state},
    query,
    routing::Route,
};
use crate::{
    auth::scope::Scope,
    domain::PhoneNumber,
    message_log::{self, Cursor, LogFilter},
    state::AppState,
};

/// WhatsApp accepts longer texts, but a gateway message past this is almost always a mistake.
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

#[derive(Deserialize, ToSchema)]
struct SendRequest {
    /// A phone number in international form (`+1 555 999 0001`, `0015559990001`,
    /// `15559990001`) or a WhatsApp JID.
    to: String,
    /// 1 to 4,096 characters.
    text: String,
}

/// A page of the message log, newest first; `next_cursor` (when there may be more) goes into
/// `cursor` for the next page.
#[derive(Serialize, ToSchema)]
struct MessagePage {
    messages: Vec<LoggedMessage>,
    next_cursor: Option<String>,
}

/// An entry of either log: a sent message, or (with `direction=in`) a received one.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum LoggedMessage {
    Sent(Message),
    Received(InboundMessage),
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let idempotency = || warp::header::optional::<String>("idempotency-key");
    vec![
        Route::new::<__path_web_send>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .and(idempotency())
                .and(json_body(state.body_limits))
                .then(web_send)
                .boxed()
        }),
        Route::new::<__path_api_send>(|at| {
            at.and(with_state(state.clone()))
                .and(api_key_caller(state.clone()))
                .and(idempotency())
                .and(json_body(state.body_limits))
                .then(api_send)
                .boxed()
        }),
        Route::new::<__path_send_from_query>(|at| {
            at.and(with_state(state.clone()))
                .and(query::query())
                .and(idempotency())
                .then(|state, query, key| async move {
                    respond(send_from_query(state, query, key).await)
                })
                .boxed()
        }),
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(scoped_caller(state.clone(), Scope::MessagesRead))
                .and(query::query())
                .then(
                    |state, caller, query| async move { respond(list(state, caller, query).await) },
                )
                .boxed()
        }),
        Route::with::<__path_get, String>(|at| {
            at.and(with_state(state.clone()))
                .and(scoped_caller(state.clone(), Scope::MessagesRead))
                .then(|id, state, caller| async move { respond(get(id, state, caller).await) })
                .boxed()
        }),
    ]
}

/// Send a message (dashboard)
///
/// Stored as `queued` and answered 202; the session sends it and the log follows it through
/// sent → delivered → read (or failed, with the reason). The same `Idempotency-Key` (per
/// user) answers the first request's message instead of sending twice.
#[utoipa::path(post, path = "/api/messages/send", tag = "messages", operation_id = "send_message",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, max_length = 200, description = "Up to 200 characters: a retry with the same key answers the first request's message")),
    request_body = SendRequest,
    responses(
        (status = 202, description = "Queued (or, for a repeated `Idempotency-Key`, the first request's message)", body = Message,
            headers(("idempotent-replayed" = String, description = "`true` when this is the first request's message"))),
        (status = 409, description = "`not_paired`: no WhatsApp account is linked", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's messages for the day or month are used up; nothing was stored. `resets_at` (and `Retry-After`) say when a send passes again", body = ErrorBody,
            headers(("retry-after" = String, description = "Seconds until the quota resets"))),
    ))]
async fn web_send(
    state: Arc<AppState>,
    caller: Caller,
    idempotency_key: Option<String>,
    body: SendRequest,
) -> warp::reply::Response {
    respond(send(state, caller, MessageSource::Web, idempotency_key, body).await)
}

/// Send a message (integrations)
///
/// As `POST /api/messages/send`, for API keys (`X-Api-Key`, or `Authorization: Bearer bw_…`)
/// with the `messages:send` scope.
#[utoipa::path(post, path = "/api/send", tag = "messages", operation_id = "send_message_with_api_key",
    security(("api_key" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, max_length = 200, description = "Up to 200 characters: a retry with the same key answers the first request's message")),
    request_body = SendRequest,
    responses(
        (status = 202, description = "Queued", body = Message,
            headers(("idempotent-replayed" = String, description = "`true` when this is the first request's message"))),
        (status = 409, description = "`not_paired`: no WhatsApp account is linked", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's quota is used up; nothing was stored", body = ErrorBody,
            headers(("retry-after" = String, description = "Seconds until the quota resets"))),
    ))]
async fn api_send(
    state: Arc<AppState>,
    caller: Caller,
    idempotency_key: Option<String>,
    body: SendRequest,
) -> warp::reply::Response {
    respond(send(state, caller, MessageSource::Api, idempotency_key, body).await)
}

/// The send API is for API keys with `messages:send`; a login token belongs on
/// `/api/messages/send`.
fn api_key_caller(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(state).and_then(|caller: Caller| async move {
        match caller.credential {
            Credential::ApiKey { .. } => caller
                .require(Scope::MessagesSend)
                .map(|()| caller)
                .map_err(warp::reject::custom),
            Credential::Token => Err(warp::reject::custom(ApiError::Forbidden(
                "this endpoint takes an API key; use /api/messages/send with a login token",
            ))),
        }
    })
}

async fn send(
    state: Arc<AppState>,
    caller: Caller,
    source: MessageSource,
    idempotency_key: Option<String>,
    body: SendRequest,
) -> Result<warp::reply::Response, ApiError> {
    let to = PhoneNumber::parse(&body.to).map_err(|m| ApiError::validation("to", m))?;
    if body.text.trim().is_empty() {
        return Err(ApiError::validation("text", "text must not be empty"));
    }
    if body.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::validation(
            "text",
            format!("text must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    let idempotency_key = idempotency_key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.len() > MAX_IDEMPOTENCY_KEY_LEN)
    {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"
        )));
    }
    let api_key_id = match caller.credential {
        Credential::ApiKey { key_id, .. } => Some(key_id),
        Credential::Token => None,
    };
    let enqueued = outbox::enqueue_for_linked(
        &state.pool,
        NewMessage {
            user_id: caller.user.id,
            recipient: to.digits().to_owned(),
            body: body.text,
            source,
            api_key_id,
            idempotency_key,
        },
        state.plans_enforced,
    )
    .await?;
    let (message, created) = match enqueued {
        Enqueued::Created(message) => (message, true),
        Enqueued::Replayed(message) => (message, false),
        Enqueued::NotLinked => {
            return Err(ApiError::Conflict(
                "not_paired",
                "no WhatsApp account is linked: POST /api/whatsapp/initialize and scan the QR code first".into(),
            ));
        }
        Enqueued::OverQuota(quota) => {
            let period = match quota.period {
                QuotaPeriod::Day => "today",
                QuotaPeriod::Month => "this month",
            };
            return Err(ApiError::QuotaExceeded {
                message: format!(
                    "your plan allows {} messages {period} and {} were sent; sending is possible again at {}",
                    quota.limit,
                    quota.used,
                    quota
                        .resets_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                resets_at: quota.resets_at,
            });
        }
    };
    if created {
        state.sessions.notify_queued(caller.user.id);
    }
    let reply = warp::reply::with_status(warp::reply::json(&message), StatusCode::ACCEPTED);
    Ok(warp::reply::with_header(
        reply,
        "idempotent-replayed",
        if created { "false" } else { "true" },
    )
    .into_response())
}

/// Send a message from a URL
///
/// `GET /api/send?api_key=…&to=…&text=…` (or `message=…`) for integrations that can only fetch
/// a URL; the key needs the `messages:send` scope. The key travels in the URL, so prefer the
/// POST form where possible.
#[utoipa::path(get, path = "/api/send", tag = "messages", operation_id = "send_message_from_url",
    security(("api_key_query" = [])),
    params(
        ("to" = String, Query, description = "The recipient, as in the POST form"),
        ("text" = Option<String>, Query, description = "The text, 1 to 4,096 characters"),
        ("message" = Option<String>, Query, description = "The text, when `text` is not given"),
        ("Idempotency-Key" = Option<String>, Header, max_length = 200, description = "As for the POST form"),
    ),
    responses(
        (status = 202, description = "Queued", body = Message,
            headers(("idempotent-replayed" = String, description = "`true` when this is the first request's message"))),
        (status = 400, description = "`validation_failed`: `to` or the text is missing or wrong", body = ErrorBody),
        (status = 401, description = "No or an unknown `api_key`", body = ErrorBody),
        (status = 403, description = "`account_disabled`, or `insufficient_scope`: the key lacks `messages:send`", body = ErrorBody),
        (status = 409, description = "`not_paired`: no WhatsApp account is linked", body = ErrorBody),
        (status = 429, description = "`quota_exceeded`: the plan's quota is used up; nothing was stored", body = ErrorBody,
            headers(("retry-after" = String, description = "Seconds until the quota resets"))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
async fn send_from_query(
    state: Arc<AppState>,
    mut query: HashMap<String, String>,
    idempotency_key: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let key = query.remove("api_key").ok_or(ApiError::Unauthorized(
        "missing_credentials",
        "pass the API key as api_key=…",
    ))?;
    let caller = super::filters::identify_key(&state, &key).await?;
    caller.require(Scope::MessagesSend)?;
    let to = query
        .remove("to")
        .ok_or_else(|| ApiError::validation("to", "to is required"))?;
    let text = query
        .remove("text")
        .or_else(|| query.remove("message"))
        .ok_or_else(|| ApiError::validation("text", "text (or message) is required"))?;
    send(
        state,
        caller,
        MessageSource::Api,
        idempotency_key,
        SendRequest { to, text },
    )
    .await
}

/// The message log
///
/// The caller's sent messages, newest first; with `direction=in`, what contacts sent to the
/// linked number (`contact` then names one sender). API keys need the `messages:read` scope.
#[utoipa::path(get, path = "/api/messages", tag = "messages", operation_id = "list_messages",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("status" = Option<MessageStatus>, Query, description = "Only messages in this status"),
        ("source" = Option<MessageSource>, Query, description = "Only messages sent from the dashboard (`web`) or the API (`api`)"),
        ("recipient" = Option<String>, Query, description = "Only messages to this number (also `to`)"),
        ("from" = Option<String>, Query, description = "Created at or after: a date (`2026-01-31`) or an RFC 3339 time (also `since`)"),
        ("until" = Option<String>, Query, description = "Created before: a date or an RFC 3339 time (also `to_date`)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Page size"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("direction" = Option<Direction>, Query, description = "`out` (default): sent; `in`: received"),
        ("contact" = Option<String>, Query, description = "With `direction=in`: only messages from this number"),
    ),
    responses((status = 200, description = "One page", body = MessagePage)))]
async fn list(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, ApiError> {
    let mut filter = LogFilter::default();
    if let Some(status) = query.get("status") {
        filter.status = Some(MessageStatus::parse(status).ok_or_else(|| {
            ApiError::validation(
                "status",
                "status must be queued, sending, sent, delivered, read or failed",
            )
        })?);
    }
    if let Some(source) = query.get("source") {
        filter.source = Some(match source.as_str() {
            "web" => MessageSource::Web,
            "api" => MessageSource::Api,
            _ => return Err(ApiError::validation("source", "source must be web or api")),
        });
    }
    if let Some(recipient) = query.get("recipient").or(query.get("to")) {
        let number =
            PhoneNumber::parse(recipient).map_err(|m| ApiError::validation("recipient", m))?;
        filter.recipient = Some(number.digits().to_owned());
    }
    filter.since = match query::time(&query, "from")? {
        Some(from) => Some(from),
        None => query::time(&query, "since")?,
    };
    filter.until = match query::time(&query, "until")? {
        Some(until) => Some(until),
        None => query::time(&query, "to_date")?,
    };
    let limit = match query.get("limit") {
        Some(limit) => limit
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=message_log::MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::validation(
                    "limit",
                    format!("limit must be 1 to {}", message_log::MAX_PAGE),
                )
            })?,
        None => message_log::DEFAULT_PAGE,
    };
    let cursor =
        match query.get("cursor") {
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                ApiError::validation("cursor", "cursor is not one this API issued")
            })?),
            None => None,
        };
    let direction = match query.get("direction").map(String::as_str) {
        None | Some("out") => Direction::Out,
        Some("in") => Direction::In,
        Some(_) => {
            return Err(ApiError::validation(
                "direction",
                "direction must be in or out",
            ));
        }
    };
    if direction == Direction::In {
        // Received messages: `contact` names the sender (`from` is the start of the range).
        if let Some(contact) = query.get("contact") {
            let number =
                PhoneNumber::parse(contact).map_err(|m| ApiError::validation("contact", m))?;
            filter.recipient = Some(number.digits().to_owned());
        }
        let page =
            message_log::list_inbound(&state.pool, caller.user.id, &filter, cursor, limit).await?;
        return Ok(warp::reply::json(&MessagePage {
            messages: page
                .messages
                .into_iter()
                .map(LoggedMessage::Received)
                .collect(),
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }));
    }
    let page = message_log::list(&state.pool, caller.user.id, &filter, cursor, limit).await?;
    Ok(warp::reply::json(&MessagePage {
        messages: page.messages.into_iter().map(LoggedMessage::Sent).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Which log `GET /api/messages` reads.
#[derive(ToSchema, PartialEq)]
#[schema(rename_all = "lowercase")]
pub(super) enum Direction {
    Out,
    In,
}

/// One sent message
///
/// API keys need the `messages:read` scope.
#[utoipa::path(get, path = "/api/messages/{id}", tag = "messages", operation_id = "get_message",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message", body = Message),
        (status = 404, description = "No such message of the caller's", body = ErrorBody),
    ))]
async fn get(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("message"))?;
    let message: Message = outbox::get(&state.pool, caller.user.id, id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(warp::reply::json(&message))
}
