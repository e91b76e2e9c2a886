//! `GET /api/usage` (the caller's plan, quotas, usage and reset times) and `GET /api/plans`
//! (the plans there are, for choosing an upgrade); and the plan-limit check the routes that
//! create API keys and webhook endpoints make.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, Reply};

use super::{
    error::{ApiError, respond},
    filters::{Caller, caller, with_state},
    routing::Route,
};
use crate::{
    plans::{self, Plan, PlanError, Resource, Usage},
    state::AppState,
};

/// The plans an account can be on, and whether upgrading through Stripe is possible here.
#[derive(Serialize, ToSchema)]
struct PlanList {
    plans: Vec<Plan>,
    /// Billing is configured: plans with a `stripe_price_id` can be bought from the dashboard.
    billing_enabled: bool,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_usage>(|at| {
            at.and(with_state(state.clone()))
                .and(caller(state.clone()))
                .then(|state, caller| async move { respond(usage(state, caller).await) })
                .boxed()
        }),
        Route::new::<__path_plans>(|at| {
            at.and(with_state(state.clone()))
                .and(caller(state.clone()))
                .then(|state, _caller| async move { respond(plans(state).await) })
                .boxed()
        }),
    ]
}

/// The caller's plan and usage
///
/// The plan the account is on now, its quotas and limits, what is used of each, and when the
/// message quotas reset (UTC midnight, the first of the next month). `downgrade_at` is set
/// after a failed payment: from then on the account is on the default plan.
#[utoipa::path(get, path = "/api/usage", tag = "plans", operation_id = "get_usage",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The plan and its usage", body = Usage)))]
async fn usage(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, ApiError> {
    let usage = plans::usage(&state.pool, caller.user.id, state.plans_enforced)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(warp::reply::json(&usage))
}

/// The plans
///
/// Every plan, the default first: what each allows and costs.
#[utoipa::path(get, path = "/api/plans", tag = "plans", operation_id = "list_plans",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "The plans", body = PlanList)))]
async fn plans(state: Arc<AppState>) -> Result<impl Reply, ApiError> {
    Ok(warp::reply::json(&PlanList {
        plans: plans::list(&state.pool).await?,
        billing_enabled: state.billing.is_some(),
    }))
}

/// 403 `plan_limit_reached` when `user_id`'s plan allows no more of `resource` (and the
/// installation enforces plans).
pub async fn ensure_room(
    state: &AppState,
    user_id: Uuid,
    resource: Resource,
) -> Result<(), ApiError> {
    if !state.plans_enforced {
        return Ok(());
    }
    if let Err(reached) = plans::room_for(&state.pool, user_id, resource).await? {
        let what = match resource {
            Resource::ApiKeys => "API keys",
            Resource::WebhookEndpoints => "webhook endpoints",
        };
        return Err(ApiError::PlanLimitReached(format!(
            "the {} plan allows {} {what}: revoke one, or upgrade",
            reached.plan, reached.limit
        )));
    }
    Ok(())
}

impl From<PlanError> for ApiError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::NotFound => ApiError::NotFound("plan"),
            PlanError::NameTaken => ApiError::Conflict("plan_name_taken", error.to_string()),
            PlanError::PriceTaken => ApiError::Conflict("stripe_price_taken", error.to_string()),
            PlanError::DefaultNeeded => {
                ApiError::Conflict("default_plan_needed", error.to_string())
            }
            PlanError::Db(error) => error.into(),
        }
    }
}
