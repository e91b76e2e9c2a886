//! `/api/admin/plans` and `/api/admin/users/{id}/plan`: define plans (quotas, limits, price,
//! Stripe price), choose the default one, and put an account on a plan. Each change is
//! written with its audit row.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, http::StatusCode, reply::Response};

use super::{admin, json_reply};
use crate::{
    admin::audit::{self, Target},
    http::{
        error::{ApiError, ErrorBody, respond},
        filters::{Caller, json_body, with_state},
        routing::Route,
    },
    plans::{self, Plan, PlanFields, PlanMembers},
    state::AppState,
};

const MAX_NAME_CHARS: usize = 60;
const MAX_PRICE_ID_CHARS: usize = 255;
/// A hundred million minor units (a million dollars) a month: anything above is a typo.
const MAX_PRICE_AMOUNT: i64 = 100_000_000;

/// A field that may be absent (unchanged), `null` (no limit) or a value.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A plan's fields. On create, `name` is required and a limit left out is no limit; on
/// update, a field left out stays as it is, and `null` removes a limit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanInput {
    /// 1 to 60 characters, unique.
    name: Option<String>,
    /// Messages accepted per UTC day; `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    messages_per_day: Option<Option<i32>>,
    /// Messages accepted per UTC calendar month; `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    messages_per_month: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    linked_numbers: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    api_keys: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, minimum = 0)]
    webhook_endpoints: Option<Option<i32>>,
    /// Per month, in the currency's minor unit (cents), 0 to 100,000,000.
    #[schema(minimum = 0, maximum = 100000000)]
    price_amount: Option<i64>,
    /// ISO 4217 code (`usd`).
    price_currency: Option<String>,
    /// The Stripe Price (`price_…`) a checkout subscribes to; `null`: not sold through Stripe.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    stripe_price_id: Option<Option<String>>,
    /// Make this the default plan (the previous default stops being one).
    is_default: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanAssignment {
    /// The plan; `null`: the default plan.
    plan_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct AdminPlan {
    #[serde(flatten)]
    plan: Plan,
    #[serde(flatten)]
    members: PlanMembers,
}

#[derive(Serialize, ToSchema)]
struct AdminPlanList {
    plans: Vec<AdminPlan>,
}

#[derive(Serialize, ToSchema)]
struct OnePlan {
    plan: Plan,
}

#[derive(Serialize, ToSchema)]
struct PlanAssigned {
    user_id: Uuid,
    /// The plan the account is on now.
    plan: Plan,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let body = state.body_limits;
    vec![
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|state, _caller| async move { respond(list(state).await) })
                .boxed()
        }),
        Route::new::<__path_create>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(
                    |state, caller, body| async move { respond(create(state, caller, body).await) },
                )
                .boxed()
        }),
        Route::with::<__path_update, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(|id, state, caller, body| async move {
                    respond(update(state, caller, id, body).await)
                })
                .boxed()
        }),
        Route::with::<__path_assign, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(|id, state, caller, body| async move {
                    respond(assign(state, caller, id, body).await)
                })
                .boxed()
        }),
    ]
}

/// Checks `input`'s values and turns them into the fields to store.
fn validate(input: PlanInput) -> Result<PlanFields, ApiError> {
    let name = match input.name {
        Some(name) => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                return Err(ApiError::validation(
                    "name",
                    format!("name must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
            Some(name)
        }
        None => None,
    };
    for (field, value) in [
        ("messages_per_day", input.messages_per_day),
        ("messages_per_month", input.messages_per_month),
        ("linked_numbers", input.linked_numbers),
        ("api_keys", input.api_keys),
        ("webhook_endpoints", input.webhook_endpoints),
    ] {
        if value.flatten().is_some_and(|limit| limit < 0) {
            return Err(ApiError::validation(
                field,
                format!("{field} must be 0 or more, or null for no limit"),
            ));
        }
    }
    if input
        .price_amount
        .is_some_and(|amount| !(0..=MAX_PRICE_AMOUNT).contains(&amount))
    {
        return Err(ApiError::validation(
            "price_amount",
            format!("price_amount must be 0 to {MAX_PRICE_AMOUNT} (minor units, e.g. cents)"),
        ));
    }
    let price_currency = match input.price_currency {
        Some(currency) => {
            let currency = currency.trim().to_ascii_lowercase();
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(ApiError::validation(
                    "price_currency",
                    "price_currency must be a three-letter ISO 4217 code, e.g. usd",
                ));
            }
            Some(currency)
        }
        None => None,
    };
    let stripe_price_id = match input.stripe_price_id {
        Some(Some(id)) => {
            let id = id.trim().to_owned();
            if id.is_empty()
                || id.chars().count() > MAX_PRICE_ID_CHARS
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ApiError::validation(
                    "stripe_price_id",
                    "stripe_price_id must be a Stripe price id (letters, digits, _ and -), or null",
                ));
            }
            Some(Some(id))
        }
        other => other,
    };
    Ok(PlanFields {
        name,
        messages_per_day: input.messages_per_day,
        messages_per_month: input.messages_per_month,
        linked_numbers: input.linked_numbers,
        api_keys: input.api_keys,
        webhook_endpoints: input.webhook_endpoints,
        price_amount: input.price_amount,
        price_currency,
        stripe_price_id,
        is_default: input.is_default,
    })
}

/// What the audit log keeps of a plan: its values after the change, flat.
fn audit_details(plan: &Plan) -> serde_json::Value {
    json!({
        "plan": plan.name, "plan_id": plan.id,
        "messages_per_day": plan.messages_per_day, "messages_per_month": plan.messages_per_month,
        "linked_numbers": plan.linked_numbers, "api_keys": plan.api_keys,
        "webhook_endpoints": plan.webhook_endpoints,
        "price": format!("{} {}", plan.price.amount, plan.price.currency),
        "stripe_price_id": plan.stripe_price_id, "default": plan.is_default,
    })
}

/// Plans
///
/// Every plan, the default first, with how many accounts are on each and what they sent
/// today and this month.
#[utoipa::path(get, path = "/api/admin/plans", tag = "admin", operation_id = "admin_list_plans",
    security(("bearer" = [])),
    responses((status = 200, description = "The plans", body = AdminPlanList)))]
async fn list(state: Arc<AppState>) -> Result<Response, ApiError> {
    let plans = plans::list_with_members(&state.pool)
        .await?
        .into_iter()
        .map(|(plan, members)| AdminPlan { plan, members })
        .collect();
    Ok(json_reply(&AdminPlanList { plans }, StatusCode::OK))
}

/// Create a plan
#[utoipa::path(post, path = "/api/admin/plans", tag = "admin", operation_id = "admin_create_plan",
    security(("bearer" = [])),
    request_body = PlanInput,
    responses(
        (status = 201, description = "Created", body = OnePlan),
        (status = 409, description = "`plan_name_taken` or `stripe_price_taken`", body = ErrorBody),
    ))]
async fn create(
    state: Arc<AppState>,
    caller: Caller,
    body: PlanInput,
) -> Result<Response, ApiError> {
    if body.name.is_none() {
        return Err(ApiError::validation("name", "name is required"));
    }
    let fields = validate(body)?;
    let mut conn = state.pool.get().await.map_err(crate::db::DbError::from)?;
    let tx = conn.transaction().await.map_err(crate::db::DbError::from)?;
    let plan = plans::create(&tx, &fields).await?;
    audit::record(&tx, &caller.user, "plan.create", None, audit_details(&plan)).await?;
    tx.commit().await.map_err(crate::db::DbError::from)?;
    Ok(json_reply(&OnePlan { plan }, StatusCode::CREATED))
}

/// Change a plan
///
/// Only the fields given change; the accounts on the plan get the new quotas at once.
#[utoipa::path(patch, path = "/api/admin/plans/{id}", tag = "admin", operation_id = "admin_update_plan",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The plan's id")),
    request_body = PlanInput,
    responses(
        (status = 200, description = "Changed", body = OnePlan),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "`plan_name_taken`, `stripe_price_taken` or `default_plan_needed`", body = ErrorBody),
    ))]
async fn update(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: PlanInput,
) -> Result<Response, ApiError> {
    let fields = validate(body)?;
    let mut conn = state.pool.get().await.map_err(crate::db::DbError::from)?;
    let tx = conn.transaction().await.map_err(crate::db::DbError::from)?;
    let plan = plans::update(&tx, id, &fields).await?;
    audit::record(&tx, &caller.user, "plan.update", None, audit_details(&plan)).await?;
    tx.commit().await.map_err(crate::db::DbError::from)?;
    Ok(json_reply(&OnePlan { plan }, StatusCode::OK))
}

/// Put an account on a plan
///
/// `plan_id: null` puts it on the default plan. A downgrade pending after a failed payment is
/// dropped. A Stripe subscription is not changed: its next event moves the account again.
#[utoipa::path(put, path = "/api/admin/users/{id}/plan", tag = "admin", operation_id = "admin_assign_plan",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = PlanAssignment,
    responses(
        (status = 200, description = "Moved", body = PlanAssigned),
        (status = 404, description = "No such account or plan", body = ErrorBody),
    ))]
async fn assign(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: PlanAssignment,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.get().await.map_err(crate::db::DbError::from)?;
    let tx = conn.transaction().await.map_err(crate::db::DbError::from)?;
    let user = plans::lock_user(&tx, id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let plan = match body.plan_id {
        Some(plan_id) => plans::get(&tx, plan_id).await?,
        None => {
            let default = plans::default_plan(&tx).await?;
            plans::get(&tx, default).await?
        }
    };
    plans::assign(&tx, id, body.plan_id).await?;
    audit::record(
        &tx,
        &caller.user,
        "user.plan",
        Some(Target::from(&user)),
        json!({ "plan_id": plan.id, "plan": plan.name }),
    )
    .await?;
    tx.commit().await.map_err(crate::db::DbError::from)?;
    Ok(json_reply(
        &PlanAssigned { user_id: id, plan },
        StatusCode::OK,
    ))
}
