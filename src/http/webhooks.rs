//! `/api/webhooks`: a user's webhook endpoints (create — the secret is shown in that answer
//! only —, list, read, change, delete, rotate the secret, test ping), their deliveries (the
//! dead-letter list, replay of one or all) and their last attempts. Login token or API key;
//! every query is scoped to the caller, so another user's endpoint is simply not found.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::{
    error::{ApiError, respond},
    filters::{Caller, caller, json_body, with_state},
};
use crate::{
    state::AppState,
    webhooks::{
        EVENT_TYPES,
        client::Delivery,
        signature,
        store::{self, EndpointChange},
        target::{self, TargetUrl},
    },
};

const MAX_DESCRIPTION_CHARS: usize = 200;
/// How long saving an endpoint waits for its host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    paused: Option<bool>,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // Every route: the state and the authenticated caller (login token or API key).
    let who = with_state(state.clone()).and(caller(state.clone()));
    let create = warp::path!("api" / "webhooks")
        .and(warp::post())
        .and(who.clone())
        .and(json_body(state.body_limits))
        .then(|state, caller, body| async move { respond(create(state, caller, body).await) });
    let list = warp::path!("api" / "webhooks")
        .and(warp::get())
        .and(who.clone())
        .then(|state, caller| async move { respond(list(state, caller).await) });
    let one = warp::path!("api" / "webhooks" / String)
        .and(warp::get())
        .and(who.clone())
        .then(|id, state, caller| async move { respond(get(id, state, caller).await) });
    let patch = warp::path!("api" / "webhooks" / String)
        .and(warp::patch())
        .and(who.clone())
        .and(json_body(state.body_limits))
        .then(
            |id, state, caller, body| async move { respond(update(id, state, caller, body).await) },
        );
    let delete = warp::path!("api" / "webhooks" / String)
        .and(warp::delete())
        .and(who.clone())
        .then(|id, state, caller| async move { respond(delete(id, state, caller).await) });
    let rotate = warp::path!("api" / "webhooks" / String / "rotate-secret")
        .and(warp::post())
        .and(who.clone())
        .then(|id, state, caller| async move { respond(rotate(id, state, caller).await) });
    let test = warp::path!("api" / "webhooks" / String / "test")
        .and(warp::post())
        .and(who.clone())
        .then(|id, state, caller| async move { respond(ping(id, state, caller).await) });
    let deliveries = warp::path!("api" / "webhooks" / String / "deliveries")
        .and(warp::get())
        .and(who.clone())
        .and(crate::http::query::query())
        .then(|id, state, caller, query| async move {
            respond(deliveries(id, state, caller, query).await)
        });
    let replay_one = warp::path!("api" / "webhooks" / String / "deliveries" / String / "replay")
        .and(warp::post())
        .and(who.clone())
        .then(|id, delivery, state, caller| async move {
            respond(replay(id, Some(delivery), state, caller).await)
        });
    let replay_all = warp::path!("api" / "webhooks" / String / "replay")
        .and(warp::post())
        .and(who.clone())
        .then(|id, state, caller| async move { respond(replay(id, None, state, caller).await) });
    let attempts = warp::path!("api" / "webhooks" / String / "attempts")
        .and(warp::get())
        .and(who)
        .and(crate::http::query::query())
        .then(|id, state, caller, query| async move {
            respond(attempts(id, state, caller, query).await)
        });
    create
        .or(list)
        .unify()
        .or(one)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(rotate)
        .unify()
        .or(test)
        .unify()
        .or(deliveries)
        .unify()
        .or(replay_one)
        .unify()
        .or(replay_all)
        .unify()
        .or(attempts)
        .unify()
}

fn endpoint_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound("webhook endpoint"))
}

/// The subscribed event types, each known, without repeats.
fn parse_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::validation(
            "events",
            format!(
                "events must name at least one of {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    let mut chosen: Vec<String> = Vec::new();
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            let shown: String = event.chars().take(40).collect();
            return Err(ApiError::validation(
                "events",
                format!(
                    "unknown event type \"{shown}\"; events are {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !chosen.contains(&event) {
            chosen.push(event);
        }
    }
    Ok(chosen)
}

fn parse_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    let description = description.map(|d| d.trim().to_owned());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::validation(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(description)
}

/// The URL rules, and for a host name, that it does not resolve to addresses this node
/// refuses (a name that cannot be resolved now is accepted: it is checked at every delivery).
async fn parse_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    let allow_private = state.webhook_allow_private;
    let target =
        TargetUrl::parse(url, allow_private).map_err(|m| ApiError::validation("url", m))?;
    if !allow_private
        && let Some((host, port)) = target.host_and_port()
        && let Ok(Ok(addresses)) = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
    {
        let addresses: Vec<_> = addresses.collect();
        if !addresses.is_empty() && target::allowed(addresses, false).is_empty() {
            return Err(ApiError::validation(
                "url",
                format!(
                    "{host} resolves to a private, loopback or link-local address, which this \
                     server does not deliver to"
                ),
            ));
        }
    }
    Ok(target.url.to_string())
}

async fn create(
    state: Arc<AppState>,
    caller: Caller,
    body: NewEndpoint,
) -> Result<warp::reply::Response, ApiError> {
    let url = parse_url(&state, &body.url).await?;
    let events = parse_events(body.events)?;
    let description = parse_description(body.description)?.unwrap_or_default();
    let secret = signature::new_secret();
    let endpoint = store::create(
        &state.pool,
        caller.user.id,
        &url,
        &description,
        &events,
        &secret,
    )
    .await?
    .ok_or_else(|| {
        ApiError::Conflict(
            "too_many_webhooks",
            format!(
                "an account may have at most {} webhook endpoints",
                store::MAX_ENDPOINTS_PER_USER
            ),
        )
    })?;
    let mut body =
        serde_json::to_value(&endpoint).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(object) = body.as_object_mut() {
        object.insert("secret".into(), json!(secret));
    }
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED).into_response())
}

async fn list(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let endpoints = store::list(&state.pool, caller.user.id).await?;
    Ok(warp::reply::json(&json!({ "webhooks": endpoints })))
}

async fn get(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let endpoint = store::get(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(warp::reply::json(&endpoint))
}

async fn update(
    id: String,
    state: Arc<AppState>,
    caller: Caller,
    body: EndpointPatch,
) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let url = match &body.url {
        Some(url) => Some(parse_url(&state, url).await?),
        None => None,
    };
    let change = EndpointChange {
        url,
        events: body.events.map(parse_events).transpose()?,
        description: parse_description(body.description)?,
        paused: body.paused,
    };
    let endpoint = store::update(&state.pool, caller.user.id, id, &change)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(warp::reply::json(&endpoint))
}

async fn delete(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    if !store::delete(&state.pool, caller.user.id, id).await? {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let secret = signature::new_secret();
    let grace = state.webhook_secret_grace.as_secs_f64();
    let rotated = store::set_secret(&state.pool, caller.user.id, id, &secret, grace)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(warp::reply::json(&json!({
        "id": id,
        "secret": secret,
        "previous_secret_valid_until": rotated.previous_valid_until,
    })))
}

/// Sends a `webhook.test` event to the endpoint now, signed like every other, and answers
/// what the receiver did. It goes out even when the endpoint is paused (to check a fix).
async fn ping(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let target = store::target(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let event_id = Uuid::new_v4();
    let body = json!({
        "id": event_id,
        "type": "webhook.test",
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": { "endpoint_id": id },
    })
    .to_string();
    let event = event_id.to_string();
    let outcome = state
        .webhook_client
        .send(&Delivery {
            url: &target.url,
            secret: &target.secret,
            previous_secret: target.previous_secret.as_deref(),
            event_id: &event,
            event_type: "webhook.test",
            body: &body,
        })
        .await;
    let latency_ms = i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX);
    let status_code = outcome.status.map(i32::from);
    store::record_ping(
        &state.pool,
        id,
        event_id,
        status_code,
        latency_ms,
        outcome.error.as_deref(),
    )
    .await?;
    Ok(warp::reply::json(&json!({
        "event_id": event_id,
        "delivered": outcome.succeeded(),
        "status_code": status_code,
        "latency_ms": latency_ms,
        "error": outcome.error,
    })))
}

fn limit(query: &HashMap<String, String>) -> Result<i64, ApiError> {
    match query.get("limit") {
        Some(limit) => limit
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=store::MAX_LIST).contains(l))
            .ok_or_else(|| {
                ApiError::validation("limit", format!("limit must be 1 to {}", store::MAX_LIST))
            }),
        None => Ok(50),
    }
}

async fn deliveries(
    id: String,
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let wanted = match query.get("state").map(String::as_str) {
        None => None,
        Some(state @ ("pending" | "delivered" | "dead")) => Some(state),
        Some(_) => {
            return Err(ApiError::validation(
                "state",
                "state must be pending, delivered or dead",
            ));
        }
    };
    let limit = limit(&query)?;
    store::get(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let deliveries = store::deliveries(&state.pool, caller.user.id, id, wanted, limit).await?;
    Ok(warp::reply::json(&json!({ "deliveries": deliveries })))
}

async fn replay(
    id: String,
    delivery: Option<String>,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let delivery = delivery
        .map(|d| Uuid::parse_str(&d).map_err(|_| ApiError::NotFound("dead delivery")))
        .transpose()?;
    store::get(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let replayed = store::replay(&state.pool, caller.user.id, id, delivery).await?;
    if delivery.is_some() && replayed == 0 {
        return Err(ApiError::NotFound("dead delivery"));
    }
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "replayed": replayed })),
        StatusCode::ACCEPTED,
    ))
}

async fn attempts(
    id: String,
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let limit = limit(&query)?;
    store::get(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    let attempts = store::attempts(&state.pool, caller.user.id, id, limit).await?;
    Ok(warp::reply::json(&json!({ "attempts": attempts })))
}
