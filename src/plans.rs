//! Plans and their quotas: the `plans` table (admin-defined; one is the default every account
//! without a plan of its own is on), which plan an account is on, and its usage against the
//! plan. The message quotas are checked and counted in the send statement itself
//! (`botwave_actors::outbox`); API keys and webhook endpoints are checked here when one is
//! created.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row, types::Type};
use uuid::Uuid;

use crate::db::{DbError, DbPool};

/// A plan, as admins edit it and users see it. A `None` limit is no limit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub id: Uuid,
    pub name: String,
    pub messages_per_day: Option<i32>,
    pub messages_per_month: Option<i32>,
    pub linked_numbers: Option<i32>,
    pub api_keys: Option<i32>,
    pub webhook_endpoints: Option<i32>,
    pub price: Price,
    /// The Stripe Price a checkout for this plan subscribes to (`None`: not sold through
    /// Stripe, so no upgrade to it from the dashboard).
    pub stripe_price_id: Option<String>,
    /// New accounts, and accounts whose subscription ended, are on the default plan.
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A price per month, in the currency's minor unit (cents), as Stripe counts it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Price {
    pub amount: i64,
    /// ISO 4217, lower case (`usd`, `eur`).
    pub currency: String,
}

pub const PLAN_COLUMNS: &str = "p.id, p.name, p.messages_per_day, p.messages_per_month, \
     p.linked_numbers, p.api_keys, p.webhook_endpoints, p.price_amount, p.price_currency, \
     p.stripe_price_id, p.is_default, p.created_at, p.updated_at";

impl Plan {
    pub fn from_row(row: &Row) -> Self {
        Plan {
            id: row.get("id"),
            name: row.get("name"),
            messages_per_day: row.get("messages_per_day"),
            messages_per_month: row.get("messages_per_month"),
            linked_numbers: row.get("linked_numbers"),
            api_keys: row.get("api_keys"),
            webhook_endpoints: row.get("webhook_endpoints"),
            price: Price {
                amount: row.get("price_amount"),
                currency: row.get("price_currency"),
            },
            stripe_price_id: row.get("stripe_price_id"),
            is_default: row.get("is_default"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan not found")]
    NotFound,
    #[error("a plan with this name already exists")]
    NameTaken,
    #[error("another plan already uses this Stripe price")]
    PriceTaken,
    #[error("the default plan cannot stop being the default: make another plan the default")]
    DefaultNeeded,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for PlanError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.as_db_error().and_then(|e| e.constraint()) {
            Some("plans_name_key") => PlanError::NameTaken,
            Some("plans_stripe_price_id_key") => PlanError::PriceTaken,
            _ => PlanError::Db(error.into()),
        }
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for PlanError {
    fn from(error: bb8::RunError<tokio_postgres::Error>) -> Self {
        PlanError::Db(error.into())
    }
}

/// Every plan, the default first, then by price and name.
pub async fn list(pool: &DbPool) -> Result<Vec<Plan>, PlanError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {PLAN_COLUMNS} FROM plans p ORDER BY p.is_default DESC, p.price_amount, p.name"
    );
    let rows = conn.query_typed(&sql, &[]).await?;
    Ok(rows.iter().map(Plan::from_row).collect())
}

/// A plan's accounts and what they sent, for admins.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlanMembers {
    /// Accounts on the plan now.
    pub members: i64,
    /// Messages its accounts sent today and this month (UTC), under any plan.
    pub messages_today: i64,
    pub messages_this_month: i64,
}

/// Every plan with its accounts and their use.
pub async fn list_with_members(pool: &DbPool) -> Result<Vec<(Plan, PlanMembers)>, PlanError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {PLAN_COLUMNS}, m.members, m.today, m.month
         FROM plans p
         CROSS JOIN LATERAL (
             SELECT count(*) AS members,
                    coalesce(sum(u.day_count) FILTER (WHERE u.day = usage_day()), 0)::int8
                        AS today,
                    coalesce(sum(u.month_count) FILTER (WHERE u.month = usage_month()), 0)::int8
                        AS month
             FROM effective_plans e LEFT JOIN plan_usage u ON u.user_id = e.user_id
             WHERE e.plan_id = p.id) m
         ORDER BY p.is_default DESC, p.price_amount, p.name"
    );
    let rows = conn.query_typed(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let members = PlanMembers {
                members: row.get("members"),
                messages_today: row.get("today"),
                messages_this_month: row.get("month"),
            };
            (Plan::from_row(row), members)
        })
        .collect())
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Plan, PlanError> {
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans p WHERE p.id = $1");
    let rows = client.query_typed(&sql, &[(&id, Type::UUID)]).await?;
    rows.first().map(Plan::from_row).ok_or(PlanError::NotFound)
}

/// The plan's fields an admin sets; on an update, `None` leaves a field as it is (and the
/// limits' inner `None` is "no limit").
#[derive(Debug, Default, Clone)]
pub struct PlanFields {
    pub name: Option<String>,
    pub messages_per_day: Option<Option<i32>>,
    pub messages_per_month: Option<Option<i32>>,
    pub linked_numbers: Option<Option<i32>>,
    pub api_keys: Option<Option<i32>>,
    pub webhook_endpoints: Option<Option<i32>>,
    pub price_amount: Option<i64>,
    pub price_currency: Option<String>,
    pub stripe_price_id: Option<Option<String>>,
    pub is_default: Option<bool>,
}

/// Creates a plan from `fields` (`name` required by the caller; unset limits are no limit),
/// in `tx` (with the admin's audit row).
pub async fn create(
    tx: &tokio_postgres::Transaction<'_>,
    fields: &PlanFields,
) -> Result<Plan, PlanError> {
    let id = Uuid::new_v4();
    tx.execute_typed(
        "INSERT INTO plans (id, name) VALUES ($1, $2)",
        &[
            (&id, Type::UUID),
            (&fields.name.clone().unwrap_or_default(), Type::TEXT),
        ],
    )
    .await?;
    update(tx, id, fields).await
}

/// Changes the given fields of plan `id`, in `tx`. Making a plan the default takes the flag
/// from the one that had it.
pub async fn update(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
    fields: &PlanFields,
) -> Result<Plan, PlanError> {
    let current = get(tx, id).await?;
    if fields.is_default == Some(false) && current.is_default {
        return Err(PlanError::DefaultNeeded);
    }
    if fields.is_default == Some(true) && !current.is_default {
        tx.execute_typed(
            "UPDATE plans SET is_default = false, updated_at = now() WHERE is_default",
            &[],
        )
        .await?;
    }
    let pick = |given: &Option<Option<i32>>, now: Option<i32>| given.unwrap_or(now);
    tx.execute_typed(
        "UPDATE plans SET name = $2, messages_per_day = $3, messages_per_month = $4,
                linked_numbers = $5, api_keys = $6, webhook_endpoints = $7, price_amount = $8,
                price_currency = $9, stripe_price_id = $10, is_default = $11, updated_at = now()
         WHERE id = $1",
        &[
            (&id, Type::UUID),
            (
                &fields.name.clone().unwrap_or(current.name.clone()),
                Type::TEXT,
            ),
            (
                &pick(&fields.messages_per_day, current.messages_per_day),
                Type::INT4,
            ),
            (
                &pick(&fields.messages_per_month, current.messages_per_month),
                Type::INT4,
            ),
            (
                &pick(&fields.linked_numbers, current.linked_numbers),
                Type::INT4,
            ),
            (&pick(&fields.api_keys, current.api_keys), Type::INT4),
            (
                &pick(&fields.webhook_endpoints, current.webhook_endpoints),
                Type::INT4,
            ),
            (
                &fields.price_amount.unwrap_or(current.price.amount),
                Type::INT8,
            ),
            (
                &fields
                    .price_currency
                    .clone()
                    .unwrap_or(current.price.currency.clone()),
                Type::TEXT,
            ),
            (
                &fields
                    .stripe_price_id
                    .clone()
                    .unwrap_or(current.stripe_price_id.clone()),
                Type::TEXT,
            ),
            (&fields.is_default.unwrap_or(current.is_default), Type::BOOL),
        ],
    )
    .await?;
    get(tx, id).await
}

/// Puts account `user_id` on plan `plan_id` (the default plan: `None`), in `tx`. A pending
/// downgrade is dropped: the admin's choice holds. `false` when there is no such account.
pub async fn assign(
    tx: &tokio_postgres::Transaction<'_>,
    user_id: Uuid,
    plan_id: Option<Uuid>,
) -> Result<bool, PlanError> {
    let moved = tx
        .execute_typed(
            "UPDATE users SET plan_id = $2, updated_at = now() WHERE id = $1",
            &[(&user_id, Type::UUID), (&plan_id, Type::UUID)],
        )
        .await?;
    tx.execute_typed(
        "UPDATE billing_accounts SET downgrade_at = NULL, updated_at = now() WHERE user_id = $1",
        &[(&user_id, Type::UUID)],
    )
    .await?;
    Ok(moved == 1)
}

/// The default plan's id.
pub async fn default_plan(client: &impl GenericClient) -> Result<Uuid, PlanError> {
    let rows = client
        .query_typed("SELECT id FROM plans WHERE is_default", &[])
        .await?;
    rows.first()
        .map(|row| row.get(0))
        .ok_or(PlanError::NotFound)
}

/// Account `id`, locked for the rest of `tx` (for a plan change and its audit row).
pub async fn lock_user(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<Option<crate::users::User>, PlanError> {
    let sql = format!(
        "SELECT {} FROM users WHERE id = $1 FOR UPDATE",
        crate::users::COLUMNS
    );
    let rows = tx.query_typed(&sql, &[(&id, Type::UUID)]).await?;
    Ok(rows.first().map(crate::users::from_row))
}

/// One quota's use in its current period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodUsage {
    pub used: i32,
    /// `None`: no limit.
    pub limit: Option<i32>,
    /// When the period ends and the count starts again (UTC midnight, or the first of the
    /// next month).
    pub resets_at: DateTime<Utc>,
}

/// A count of things the plan limits (API keys, webhook endpoints, linked numbers).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CountUsage {
    pub used: i64,
    pub limit: Option<i32>,
}

/// An account's plan and its use of it, as `GET /api/usage` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub plan: Plan,
    pub messages_today: PeriodUsage,
    pub messages_this_month: PeriodUsage,
    pub api_keys: CountUsage,
    pub webhook_endpoints: CountUsage,
    pub linked_numbers: CountUsage,
    /// Whether quotas are enforced on this installation (`plans.enforce`).
    pub enforced: bool,
    /// After a failed payment: when the account falls back to the default plan.
    pub downgrade_at: Option<DateTime<Utc>>,
    /// The Stripe subscription's status (`active`, `past_due`, …), if there is one.
    pub subscription_status: Option<String>,
}

/// The plan `user_id` is on now, with its usage. `None`: no such account.
pub async fn usage(
    pool: &DbPool,
    user_id: Uuid,
    enforced: bool,
) -> Result<Option<Usage>, PlanError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {PLAN_COLUMNS},
                coalesce((SELECT CASE WHEN day = usage_day() THEN day_count ELSE 0 END
                          FROM plan_usage WHERE user_id = $1), 0) AS day_used,
                coalesce((SELECT CASE WHEN month = usage_month() THEN month_count ELSE 0 END
                          FROM plan_usage WHERE user_id = $1), 0) AS month_used,
                (usage_day() + 1)::timestamp AT TIME ZONE 'UTC' AS day_resets_at,
                (usage_month() + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                    AS month_resets_at,
                (SELECT count(*) FROM api_keys k
                  WHERE k.user_id = $1 AND k.revoked_at IS NULL) AS keys_used,
                (SELECT count(*) FROM webhook_endpoints w WHERE w.user_id = $1) AS hooks_used,
                (SELECT count(*) FROM wa_sessions s JOIN wa_device d ON d.session_id = s.id
                  WHERE s.user_id = $1 AND d.pn IS NOT NULL) AS numbers_used,
                b.downgrade_at, b.subscription_status
         FROM effective_plans e JOIN plans p ON p.id = e.plan_id
         LEFT JOIN billing_accounts b ON b.user_id = e.user_id
         WHERE e.user_id = $1"
    );
    let rows = conn.query_typed(&sql, &[(&user_id, Type::UUID)]).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let plan = Plan::from_row(row);
    Ok(Some(Usage {
        messages_today: PeriodUsage {
            used: row.get("day_used"),
            limit: plan.messages_per_day,
            resets_at: row.get("day_resets_at"),
        },
        messages_this_month: PeriodUsage {
            used: row.get("month_used"),
            limit: plan.messages_per_month,
            resets_at: row.get("month_resets_at"),
        },
        api_keys: CountUsage {
            used: row.get("keys_used"),
            limit: plan.api_keys,
        },
        webhook_endpoints: CountUsage {
            used: row.get("hooks_used"),
            limit: plan.webhook_endpoints,
        },
        linked_numbers: CountUsage {
            used: row.get("numbers_used"),
            limit: plan.linked_numbers,
        },
        enforced,
        downgrade_at: row.get("downgrade_at"),
        subscription_status: row.get("subscription_status"),
        plan,
    }))
}

/// What a plan limits by count.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    ApiKeys,
    WebhookEndpoints,
}

/// A limit of the caller's plan that one more `resource` would pass.
#[derive(Debug, Clone)]
pub struct LimitReached {
    pub plan: String,
    pub limit: i32,
}

/// Whether `user_id`'s plan has room for one more `resource`: `Err` with the limit when not.
/// Checked before the insert (not in it: a race of two creations at the limit can pass it by
/// one, which for keys and endpoints, made by hand, is not worth a lock).
pub async fn room_for(
    pool: &DbPool,
    user_id: Uuid,
    resource: Resource,
) -> Result<Result<(), LimitReached>, PlanError> {
    let conn = pool.get().await?;
    let (limit_column, count) = match resource {
        Resource::ApiKeys => (
            "p.api_keys",
            "(SELECT count(*) FROM api_keys k WHERE k.user_id = $1 AND k.revoked_at IS NULL)",
        ),
        Resource::WebhookEndpoints => (
            "p.webhook_endpoints",
            "(SELECT count(*) FROM webhook_endpoints w WHERE w.user_id = $1)",
        ),
    };
    let sql = format!(
        "SELECT p.name, {limit_column} AS limit_value, {count} AS used
         FROM effective_plans e JOIN plans p ON p.id = e.plan_id WHERE e.user_id = $1"
    );
    let rows = conn.query_typed(&sql, &[(&user_id, Type::UUID)]).await?;
    let Some(row) = rows.first() else {
        return Ok(Ok(()));
    };
    let limit: Option<i32> = row.get("limit_value");
    let used: i64 = row.get("used");
    Ok(match limit {
        Some(limit) if used >= i64::from(limit) => Err(LimitReached {
            plan: row.get("name"),
            limit,
        }),
        _ => Ok(()),
    })
}
