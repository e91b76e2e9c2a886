//! Stripe's webhook events, applied to accounts: each event once (its id is stored in the
//! transaction that applies it, so a redelivered or replayed event changes nothing), and
//! never an older one over a newer one (Stripe does not order deliveries: an account
//! remembers the `created` time of the last event applied to it).
//!
//! - `checkout.session.completed`: the account is on the plan it checked out (the plan and
//!   account ids ride in the session's metadata, set by [`super::checkout`]).
//! - `customer.subscription.created` / `.updated`: `active` or `trialing` puts the account on
//!   the plan of the subscription's price and ends a pending downgrade; `canceled` and
//!   `incomplete_expired` put it back on the default plan; other statuses are recorded.
//! - `customer.subscription.deleted`: back on the default plan.
//! - `invoice.payment_failed`: the account falls back to the default plan once the grace
//!   period (`billing.grace_period_secs`) from the first failure is over, unless a payment
//!   succeeds first (`invoice.paid`, or the subscription `active` again).
//!
//! Other event types are acknowledged and recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::{Transaction, types::Type};
use uuid::Uuid;

use super::BillingError;
use crate::db::DbPool;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to this account (or recorded, when it changes nothing).
    Applied(Option<Uuid>),
    /// Seen before: nothing changed.
    Duplicate,
}

/// How an event changes an account.
#[derive(Debug, Default)]
struct Change {
    /// `Some(None)`: back on the default plan.
    plan: Option<Option<Uuid>>,
    subscription: Option<Option<String>>,
    status: Option<String>,
    downgrade: Downgrade,
}

#[derive(Debug, Default, PartialEq)]
enum Downgrade {
    #[default]
    Keep,
    /// A payment failed: downgrade once the grace period is over (the first failure counts).
    AfterGrace,
    /// Paid, or moved deliberately: no downgrade pending.
    Cancel,
}

/// Applies a verified event (`body` is its JSON).
pub async fn apply(pool: &DbPool, body: &[u8], grace: Duration) -> Result<Outcome, BillingError> {
    let event: Value =
        serde_json::from_slice(body).map_err(|e| BillingError::BadEvent(e.to_string()))?;
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let id = text("/id")
        .filter(|id| !id.is_empty() && id.len() <= 255)
        .ok_or_else(|| BillingError::BadEvent("no event id".into()))?
        .to_owned();
    let kind = text("/type")
        .ok_or_else(|| BillingError::BadEvent("no event type".into()))?
        .to_owned();
    let object = event
        .pointer("/data/object")
        .filter(|object| object.is_object())
        .ok_or_else(|| BillingError::BadEvent("no data.object".into()))?;
    let created = event
        .get("created")
        .and_then(Value::as_i64)
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .unwrap_or_else(Utc::now);

    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let first_time = tx
        .execute_typed(
            "INSERT INTO stripe_events (id, type) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[(&id, Type::TEXT), (&kind, Type::TEXT)],
        )
        .await?
        == 1;
    if !first_time {
        tx.commit().await?;
        return Ok(Outcome::Duplicate);
    }
    let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let metadata = |name: &str| {
        object
            .pointer(&format!("/metadata/{name}"))
            .and_then(Value::as_str)
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    let customer = field("customer");
    let user = match kind.as_str() {
        "checkout.session.completed" => {
            let user = field("client_reference_id")
                .and_then(|v| Uuid::parse_str(&v).ok())
                .or_else(|| metadata("botwave_user_id"));
            let known = match (user, customer.as_deref()) {
                (Some(user), Some(customer)) => {
                    ensure_account(&tx, user, customer).await?.then_some(user)
                }
                _ => None,
            };
            if let Some(user) = known {
                let plan = match metadata("botwave_plan_id") {
                    Some(plan) => plan_exists(&tx, plan).await?,
                    None => None,
                };
                let change = Change {
                    plan: plan.map(Some),
                    subscription: Some(field("subscription")),
                    status: Some("active".into()),
                    downgrade: Downgrade::Cancel,
                };
                apply_change(&tx, user, &change, created, grace).await?;
            }
            known
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            match find_user(&tx, customer.as_deref(), metadata("botwave_user_id")).await? {
                Some(user) => {
                    let status = field("status").unwrap_or_default();
                    let change = match status.as_str() {
                        "active" | "trialing" => {
                            let price = object
                                .pointer("/items/data/0/price/id")
                                .and_then(Value::as_str);
                            let plan = match price {
                                Some(price) => plan_for_price(&tx, price).await?,
                                None => None,
                            };
                            Change {
                                plan: plan.map(Some),
                                subscription: Some(field("id")),
                                status: Some(status),
                                downgrade: Downgrade::Cancel,
                            }
                        }
                        "canceled" | "incomplete_expired" => Change {
                            plan: Some(None),
                            subscription: Some(None),
                            status: Some(status),
                            downgrade: Downgrade::Cancel,
                        },
                        _ => Change {
                            status: Some(status),
                            ..Change::default()
                        },
                    };
                    apply_change(&tx, user, &change, created, grace).await?;
                    Some(user)
                }
                None => None,
            }
        }
        "customer.subscription.deleted" => {
            match find_user(&tx, customer.as_deref(), metadata("botwave_user_id")).await? {
                Some(user) => {
                    let change = Change {
                        plan: Some(None),
                        subscription: Some(None),
                        status: Some("canceled".into()),
                        downgrade: Downgrade::Cancel,
                    };
                    apply_change(&tx, user, &change, created, grace).await?;
                    Some(user)
                }
                None => None,
            }
        }
        "invoice.payment_failed" | "invoice.paid" => {
            match find_user(&tx, customer.as_deref(), None).await? {
                Some(user) => {
                    let change = Change {
                        downgrade: if kind == "invoice.paid" {
                            Downgrade::Cancel
                        } else {
                            Downgrade::AfterGrace
                        },
                        ..Change::default()
                    };
                    apply_change(&tx, user, &change, created, grace).await?;
                    Some(user)
                }
                None => None,
            }
        }
        _ => None,
    };
    if user.is_none() && (kind.starts_with("customer.") || kind.starts_with("checkout.")) {
        tracing::warn!(event = %id, kind = %kind, "Stripe event for no known account; recorded, not applied");
    }
    tx.execute_typed(
        "UPDATE stripe_events SET user_id = $2 WHERE id = $1",
        &[(&id, Type::TEXT), (&user, Type::UUID)],
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome::Applied(user))
}

/// Makes sure `user` exists and has a billing account (with `customer` if it had none);
/// `false` when there is no such user.
async fn ensure_account(
    tx: &Transaction<'_>,
    user: Uuid,
    customer: &str,
) -> Result<bool, BillingError> {
    let inserted = tx
        .query_typed(
            "INSERT INTO billing_accounts (user_id, stripe_customer_id)
             SELECT id, $2 FROM users WHERE id = $1
             ON CONFLICT (user_id) DO UPDATE SET updated_at = now()
             RETURNING user_id",
            &[(&user, Type::UUID), (&customer, Type::TEXT)],
        )
        .await?;
    Ok(!inserted.is_empty())
}

async fn find_user(
    tx: &Transaction<'_>,
    customer: Option<&str>,
    from_metadata: Option<Uuid>,
) -> Result<Option<Uuid>, BillingError> {
    if let Some(customer) = customer {
        let rows = tx
            .query_typed(
                "SELECT user_id FROM billing_accounts WHERE stripe_customer_id = $1",
                &[(&customer, Type::TEXT)],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(Some(row.get(0)));
        }
        // Metadata is only trusted for the account that has this customer, or has none.
        if let Some(user) = from_metadata
            && ensure_account(tx, user, customer).await?
        {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

async fn plan_exists(tx: &Transaction<'_>, plan: Uuid) -> Result<Option<Uuid>, BillingError> {
    let rows = tx
        .query_typed("SELECT id FROM plans WHERE id = $1", &[(&plan, Type::UUID)])
        .await?;
    Ok(rows.first().map(|row| row.get(0)))
}

async fn plan_for_price(tx: &Transaction<'_>, price: &str) -> Result<Option<Uuid>, BillingError> {
    let rows = tx
        .query_typed(
            "SELECT id FROM plans WHERE stripe_price_id = $1",
            &[(&price, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().map(|row| row.get(0)))
}

/// One statement: the billing account's fields and the account's plan, unless an event newer
/// than `created` was applied already.
async fn apply_change(
    tx: &Transaction<'_>,
    user: Uuid,
    change: &Change,
    created: DateTime<Utc>,
    grace: Duration,
) -> Result<(), BillingError> {
    let downgrade = match change.downgrade {
        Downgrade::Keep => "keep",
        Downgrade::AfterGrace => "after_grace",
        Downgrade::Cancel => "cancel",
    };
    let grace_secs = grace.as_secs_f64();
    let subscription = change.subscription.clone().flatten();
    let plan = change.plan.flatten();
    tx.execute_typed(
        "WITH account AS (
             UPDATE billing_accounts SET
                 stripe_subscription_id = CASE WHEN $2 THEN $3 ELSE stripe_subscription_id END,
                 subscription_status = coalesce($4, subscription_status),
                 payment_failed_at = CASE $5 WHEN 'cancel' THEN NULL
                     WHEN 'after_grace' THEN coalesce(payment_failed_at, now())
                     ELSE payment_failed_at END,
                 downgrade_at = CASE $5 WHEN 'cancel' THEN NULL
                     WHEN 'after_grace' THEN coalesce(downgrade_at, now() + make_interval(secs => $6))
                     ELSE downgrade_at END,
                 last_event_at = greatest(last_event_at, $7),
                 updated_at = now()
             WHERE user_id = $1 AND (last_event_at IS NULL OR last_event_at <= $7)
             RETURNING user_id)
         UPDATE users SET plan_id = $9, updated_at = now()
         WHERE $8 AND id IN (SELECT user_id FROM account)",
        &[
            (&user, Type::UUID),
            (&change.subscription.is_some(), Type::BOOL),
            (&subscription, Type::TEXT),
            (&change.status, Type::TEXT),
            (&downgrade, Type::TEXT),
            (&grace_secs, Type::FLOAT8),
            (&created, Type::TIMESTAMPTZ),
            (&change.plan.is_some(), Type::BOOL),
            (&plan, Type::UUID),
        ],
    )
    .await?;
    Ok(())
}
