//! Sending and the message log: `POST /api/messages/send` (dashboard, login token),
//! `POST|GET /api/send` (integrations, API key) and `GET /api/messages[/{id}]` (with
//! `?direction=in`, the messages contacts sent to the linked number).
//!
//! A send is stored as `queued` first and answered 202 with its id; the owning session sends it
//! and moves it along sent → delivered → read (or failed). An `Idempotency-Key` header makes a
//! retried request return the first one's message instead of sending twice.

use std::{collections::HashMap, sync::Arc};

use botwave_actors::outbox::{self, Enqueued, Message, MessageSource, MessageStatus, NewMessage};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{Caller, Credential, caller, json_body, session_caller, with_state},
    query,
};
use crate::{
    domain::PhoneNumber,
    message_log::{self, Cursor, LogFilter},
    state::AppState,
};

/// WhatsApp accepts longer texts, but a gateway message past this is almost always a mistake.
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

#[derive(Deserialize)]
struct SendRequest {
    to: String,
    text: String,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let idempotency = warp::header::optional::<String>("idempotency-key");
    let web_send = warp::path!("api" / "messages" / "send")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(session_caller(state.clone()))
        .and(idempotency)
        .and(json_body(state.body_limits))
        .then(|state, caller, key, body| async move {
            respond(send(state, caller, MessageSource::Web, key, body).await)
        });
    let api_send = warp::path!("api" / "send")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(api_key_caller(state.clone()))
        .and(idempotency)
        .and(json_body(state.body_limits))
        .then(|state, caller, key, body| async move {
            respond(send(state, caller, MessageSource::Api, key, body).await)
        });
    let api_send_get = warp::path!("api" / "send")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(crate::http::query::query())
        .and(idempotency)
        .then(|state, query, key| async move { respond(send_from_query(state, query, key).await) });
    let list = warp::path!("api" / "messages")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(caller(state.clone()))
        .and(crate::http::query::query())
        .then(|state, caller, query| async move { respond(list(state, caller, query).await) });
    let one = warp::path!("api" / "messages" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(caller(state))
        .then(|id, state, caller| async move { respond(get(id, state, caller).await) });
    web_send.or(api_send).or(api_send_get).or(list).or(one)
}

/// The send API is for API keys; a login token belongs on `/api/messages/send`.
fn api_key_caller(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    caller(state).and_then(|caller: Caller| async move {
        match caller.credential {
            Credential::ApiKey { .. } => Ok(caller),
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
        Credential::ApiKey { key_id } => Some(key_id),
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

/// `GET /api/send?api_key=…&to=…&text=…` (or `message=…`) for integrations that can only fetch
/// a URL. The key travels in the URL, so prefer the POST form where possible.
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
    let inbound = match query.get("direction").map(String::as_str) {
        None | Some("out") => false,
        Some("in") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "direction",
                "direction must be in or out",
            ));
        }
    };
    if inbound {
        // Received messages: `contact` names the sender (`from` is the start of the range).
        if let Some(contact) = query.get("contact") {
            let number =
                PhoneNumber::parse(contact).map_err(|m| ApiError::validation("contact", m))?;
            filter.recipient = Some(number.digits().to_owned());
        }
        let page =
            message_log::list_inbound(&state.pool, caller.user.id, &filter, cursor, limit).await?;
        return Ok(warp::reply::json(&json!({
            "messages": page.messages,
            "next_cursor": page.next_cursor.map(|c| c.encode()),
        })));
    }
    let page = message_log::list(&state.pool, caller.user.id, &filter, cursor, limit).await?;
    Ok(warp::reply::json(&json!({
        "messages": page.messages,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}

async fn get(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("message"))?;
    let message: Message = outbox::get(&state.pool, caller.user.id, id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(warp::reply::json(&message))
}
