//! `/api/webhooks`: a user's webhook endpoints (create — the secret is shown in that answer
//! only —, list, read, change, delete, rotate the secret, test ping), their deliveries (the
//! dead-letter list, replay of one or all) and their last attempts. Login token or API key
//! with the `webhooks:manage` scope; every query is scoped to the caller, so another user's endpoint is simply not found.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, json_body, scoped_caller, with_state},
    query,
    routing::Route,
};
use crate::{
    auth::scope::Scope,
    state::AppState,
    webhooks::{
        EVENT_TYPES,
        client::Delivery,
        signature,
        store::{self, AttemptView, DeliveryView, Endpoint, EndpointChange},
        target::{self, TargetUrl},
    },
};

const MAX_DESCRIPTION_CHARS: usize = 200;
/// How long saving an endpoint waits for its host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    /// Where deliveries go: `https://…` (or `http://…`); private, loopback and link-local
    /// targets are refused unless the node allows them.
    url: String,
    /// At least one of `message.status`, `message.received`, `session.state`.
    events: Vec<String>,
    /// Up to 200 characters.
    #[serde(default)]
    description: Option<String>,
}

/// The fields to change; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    /// `true` pauses deliveries (they queue), `false` resumes them.
    paused: Option<bool>,
}

/// A new endpoint: the only answer, with rotating, that carries its signing secret.
#[derive(Serialize, ToSchema)]
struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// The signing secret, shown this once.
    secret: String,
}

#[derive(Serialize, ToSchema)]
struct EndpointList {
    webhooks: Vec<Endpoint>,
}

#[derive(Serialize, ToSchema)]
struct RotatedSecret {
    id: Uuid,
    /// The new signing secret.
    secret: String,
    /// Until when deliveries still carry a second signature made with the previous secret
    /// (`webhooks.secret_grace_secs`); `null` when there is no grace period.
    previous_secret_valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the receiver did with a `webhook.test` event.
#[derive(Serialize, ToSchema)]
struct PingOutcome {
    event_id: Uuid,
    /// The receiver answered 2xx.
    delivered: bool,
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DeliveryList {
    deliveries: Vec<DeliveryView>,
}

#[derive(Serialize, ToSchema)]
struct Replayed {
    /// Dead deliveries queued again.
    replayed: u64,
}

#[derive(Serialize, ToSchema)]
struct AttemptList {
    attempts: Vec<AttemptView>,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    // Every route: the state and the authenticated caller (login token, or API key with
    // `webhooks:manage`).
    let who = || with_state(state.clone()).and(scoped_caller(state.clone(), Scope::WebhooksManage));
    vec![
        Route::new::<__path_create>(|at| {
            at.and(who())
                .and(json_body(state.body_limits))
                .then(
                    |state, caller, body| async move { respond(create(state, caller, body).await) },
                )
                .boxed()
        }),
        Route::new::<__path_list>(|at| {
            at.and(who())
                .then(|state, caller| async move { respond(list(state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_get, String>(|at| {
            at.and(who())
                .then(|id, state, caller| async move { respond(get(id, state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_update, String>(|at| {
            at.and(who())
                .and(json_body(state.body_limits))
                .then(|id, state, caller, body| async move {
                    respond(update(id, state, caller, body).await)
                })
                .boxed()
        }),
        Route::with::<__path_delete, String>(|at| {
            at.and(who())
                .then(|id, state, caller| async move { respond(delete(id, state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_rotate, String>(|at| {
            at.and(who())
                .then(|id, state, caller| async move { respond(rotate(id, state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_ping, String>(|at| {
            at.and(who())
                .then(|id, state, caller| async move { respond(ping(id, state, caller).await) })
                .boxed()
        }),
        Route::with::<__path_deliveries, String>(|at| {
            at.and(who())
                .and(query::query())
                .then(|id, state, caller, query| async move {
                    respond(deliveries(id, state, caller, query).await)
                })
                .boxed()
        }),
        Route::with2::<__path_replay_one, String, String>(|at| {
            at.and(who()).then(replay_one).boxed()
        }),
        Route::with::<__path_replay_all, String>(|at| at.and(who()).then(replay_all).boxed()),
        Route::with::<__path_attempts, String>(|at| {
            at.and(who())
                .and(query::query())
                .then(|id, state, caller, query| async move {
                    respond(attempts(id, state, caller, query).await)
                })
                .boxed()
        }),
    ]
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

/// Create a webhook endpoint
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", operation_id = "create_webhook",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Created; `secret` is shown only here (and on rotating)", body = CreatedEndpoint),
        (status = 403, description = "`plan_limit_reached`: the plan allows no more webhook endpoints", body = ErrorBody),
        (status = 409, description = "`too_many_webhooks`", body = ErrorBody),
    ))]
async fn create(
    state: Arc<AppState>,
    caller: Caller,
    body: NewEndpoint,
) -> Result<warp::reply::Response, ApiError> {
    let url = parse_url(&state, &body.url).await?;
    let events = parse_events(body.events)?;
    let description = parse_description(body.description)?.unwrap_or_default();
    crate::http::usage::ensure_room(
        &state,
        caller.user.id,
        crate::plans::Resource::WebhookEndpoints,
    )
    .await?;
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
    Ok(warp::reply::with_status(
        warp::reply::json(&CreatedEndpoint { endpoint, secret }),
        StatusCode::CREATED,
    )
    .into_response())
}

/// The caller's webhook endpoints
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "Every endpoint (never its secret)", body = EndpointList)))]
async fn list(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let endpoints = store::list(&state.pool, caller.user.id).await?;
    Ok(warp::reply::json(&EndpointList {
        webhooks: endpoints,
    }))
}

/// One webhook endpoint
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint", body = Endpoint), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
async fn get(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let endpoint = store::get(&state.pool, caller.user.id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(warp::reply::json(&endpoint))
}

/// Change a webhook endpoint
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = EndpointPatch,
    responses((status = 200, description = "The changed endpoint", body = Endpoint), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
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

/// Delete a webhook endpoint
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 204, description = "Deleted, with its deliveries"), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
async fn delete(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    if !store::delete(&state.pool, caller.user.id, id).await? {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the signing secret
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The new secret", body = RotatedSecret), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
async fn rotate(id: String, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let id = endpoint_id(&id)?;
    let secret = signature::new_secret();
    let grace = state.webhook_secret_grace.as_secs_f64();
    let rotated = store::set_secret(&state.pool, caller.user.id, id, &secret, grace)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(warp::reply::json(&RotatedSecret {
        id,
        secret,
        previous_secret_valid_until: rotated.previous_valid_until,
    }))
}

/// Send a test event
///
/// Sends a `webhook.test` event to the endpoint now, signed like every other, and answers
/// what the receiver did. It goes out even when the endpoint is paused (to check a fix).
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "What the receiver did", body = PingOutcome), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
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
    Ok(warp::reply::json(&PingOutcome {
        event_id,
        delivered: outcome.succeeded(),
        status_code,
        latency_ms,
        error: outcome.error,
    }))
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

/// An endpoint's deliveries
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("state" = Option<String>, Query, description = "`pending`, `delivered` or `dead` (the dead letters)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "How many, newest first (50)"),
    ),
    responses((status = 200, description = "The newest deliveries", body = DeliveryList), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
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
    Ok(warp::reply::json(&DeliveryList { deliveries }))
}

/// Replay one dead delivery
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks", operation_id = "replay_webhook_delivery",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("delivery_id" = String, Path, description = "The dead delivery's id"),
    ),
    responses(
        (status = 202, description = "Queued again", body = Replayed),
        (status = 404, description = "No such endpoint of the caller's, or no such dead delivery", body = ErrorBody),
    ))]
async fn replay_one(
    id: String,
    delivery: String,
    state: Arc<AppState>,
    caller: Caller,
) -> warp::reply::Response {
    respond(replay(id, Some(delivery), state, caller).await)
}

/// Replay every dead delivery
#[utoipa::path(post, path = "/api/webhooks/{id}/replay", tag = "webhooks", operation_id = "replay_webhook",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 202, description = "The dead letters, queued again", body = Replayed), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
async fn replay_all(id: String, state: Arc<AppState>, caller: Caller) -> warp::reply::Response {
    respond(replay(id, None, state, caller).await)
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
        warp::reply::json(&Replayed { replayed }),
        StatusCode::ACCEPTED,
    ))
}

/// An endpoint's last attempts
#[utoipa::path(get, path = "/api/webhooks/{id}/attempts", tag = "webhooks", operation_id = "list_webhook_attempts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "How many, newest first (50)"),
    ),
    responses((status = 200, description = "The last requests to the receiver", body = AttemptList), (status = 404, description = "No such endpoint of the caller's", body = ErrorBody)))]
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
    Ok(warp::reply::json(&AttemptList { attempts }))
}
