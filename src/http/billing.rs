//! `/api/billing/*`: upgrading through Stripe Checkout, the Stripe customer portal, and the
//! webhook Stripe calls with its signed events. Off (404 `billing_disabled`) unless billing is
//! configured.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Reply, http::StatusCode};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::{Caller, collect, json_body, session_caller, with_state},
    routing::Route,
};
use crate::{
    billing::{self, BillingError, events},
    state::AppState,
};

/// Stripe's events are small; an invoice with many lines is still far below this.
const MAX_EVENT_BYTES: u64 = 512 * 1024;
const EVENT_READ_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
    /// The plan to subscribe to (one with a `stripe_price_id`).
    plan_id: Uuid,
}

/// Where to send the browser.
#[derive(Serialize, ToSchema)]
struct Redirect {
    url: String,
}

/// What the webhook made of an event.
#[derive(Serialize, ToSchema)]
struct EventReceipt {
    received: bool,
    /// The event was processed before; nothing changed.
    duplicate: bool,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_checkout>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .and(json_body(state.body_limits))
                .then(|state, caller, body| async move {
                    respond(checkout(state, caller, body).await)
                })
                .boxed()
        }),
        Route::new::<__path_portal>(|at| {
            at.and(with_state(state.clone()))
                .and(session_caller(state.clone()))
                .then(|state, caller| async move { respond(portal(state, caller).await) })
                .boxed()
        }),
        Route::new::<__path_stripe_webhook>(|at| {
            at.and(with_state(state.clone()))
                .and(warp::header::optional::<String>("stripe-signature"))
                .and(warp::body::content_length_limit(MAX_EVENT_BYTES))
                .and(warp::body::stream())
                .then(|state, signature, body| async move {
                    let bytes = match tokio::time::timeout(EVENT_READ_TIMEOUT, collect(body)).await
                    {
                        Ok(Ok(bytes)) => bytes,
                        Ok(Err(error)) => {
                            return ApiError::BadRequest(format!(
                                "cannot read the request body: {error}"
                            ))
                            .into_response();
                        }
                        Err(_) => return ApiError::RequestTimeout.into_response(),
                    };
                    respond(stripe_webhook(state, signature, &bytes).await)
                })
                .boxed()
        }),
    ]
}

fn enabled(state: &AppState) -> Result<&billing::Billing, ApiError> {
    state.billing.as_ref().ok_or(ApiError::BillingDisabled)
}

/// Upgrade: start a Stripe Checkout
///
/// Creates a Checkout Session (subscription mode) for the plan's Stripe price and the
/// account's Stripe customer (created on the first checkout); answers its `url`, where the
/// dashboard sends the browser. Stripe's `checkout.session.completed` event then moves the
/// account to the plan.
#[utoipa::path(post, path = "/api/billing/checkout", tag = "plans", operation_id = "start_checkout",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 200, description = "The Checkout page to send the browser to", body = Redirect),
        (status = 400, description = "`validation_failed` (`plan_id`): the plan is not sold through Stripe", body = ErrorBody),
        (status = 404, description = "No such plan, or `billing_disabled`", body = ErrorBody),
        (status = 409, description = "`already_subscribed`: use the customer portal", body = ErrorBody),
        (status = 502, description = "`billing_provider_error`: Stripe failed", body = ErrorBody),
    ))]
async fn checkout(
    state: Arc<AppState>,
    caller: Caller,
    body: CheckoutRequest,
) -> Result<impl Reply, ApiError> {
    let billing = enabled(&state)?;
    let url = billing::checkout(
        billing,
        &state.pool,
        &caller.user,
        body.plan_id,
        &state.public_url,
    )
    .await?;
    Ok(warp::reply::json(&Redirect { url }))
}

/// Manage the subscription: the Stripe customer portal
///
/// A Billing Portal Session for the account's Stripe customer; answers its `url`.
#[utoipa::path(post, path = "/api/billing/portal", tag = "plans", operation_id = "open_billing_portal",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The portal page to send the browser to", body = Redirect),
        (status = 404, description = "`billing_disabled`", body = ErrorBody),
        (status = 409, description = "`no_subscription`: nothing bought yet", body = ErrorBody),
        (status = 502, description = "`billing_provider_error`: Stripe failed", body = ErrorBody),
    ))]
async fn portal(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let billing = enabled(&state)?;
    let url = billing::portal(billing, &state.pool, &caller.user, &state.public_url).await?;
    Ok(warp::reply::json(&Redirect { url }))
}

/// Stripe's webhook
///
/// For Stripe only: events signed with the endpoint's secret (`Stripe-Signature:
/// t=…,v1=…`), processed once each by event id. A missing, wrong or old signature is 400 and
/// changes nothing.
#[utoipa::path(post, path = "/api/billing/stripe/webhook", tag = "plans", operation_id = "stripe_webhook",
    params(("Stripe-Signature" = Option<String>, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, description = "Processed (or seen before: `duplicate`)", body = EventReceipt),
        (status = 400, description = "`invalid_signature`, or not a Stripe event", body = ErrorBody),
        (status = 404, description = "`billing_disabled`", body = ErrorBody),
    ))]
async fn stripe_webhook(
    state: Arc<AppState>,
    signature: Option<String>,
    body: &[u8],
) -> Result<impl Reply, ApiError> {
    let billing = enabled(&state)?;
    billing::signature::verify(
        signature.as_deref(),
        body,
        &billing.webhook_secret,
        chrono::Utc::now().timestamp(),
        billing.tolerance_secs,
    )
    .map_err(BillingError::from)?;
    let outcome = events::apply(&state.pool, body, billing.grace_period).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&EventReceipt {
            received: true,
            duplicate: outcome == events::Outcome::Duplicate,
        }),
        StatusCode::OK,
    ))
}

impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        match error {
            BillingError::Stripe(error) => ApiError::BillingProvider(error.to_string()),
            BillingError::PlanNotFound => ApiError::NotFound("plan"),
            BillingError::NotForSale => ApiError::validation("plan_id", error.to_string()),
            BillingError::AlreadySubscribed => {
                ApiError::Conflict("already_subscribed", error.to_string())
            }
            BillingError::NoCustomer => ApiError::Conflict("no_subscription", error.to_string()),
            BillingError::Signature(error) => ApiError::InvalidSignature(error.to_string()),
            BillingError::BadEvent(message) => {
                ApiError::BadRequest(format!("not a Stripe event: {message}"))
            }
            BillingError::Db(error) => error.into(),
        }
    }
}
