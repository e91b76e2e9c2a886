//! Subscription billing through Stripe, off unless `billing.stripe_secret_key` and
//! `billing.stripe_webhook_secret` are set. A user upgrades through Stripe Checkout
//! (subscription mode, the plan's Stripe price, the account's Stripe customer) and manages the
//! subscription in Stripe's customer portal; Stripe's signed webhooks ([`events`]) move the
//! account between plans.

pub mod events;
pub mod signature;
pub mod stripe;

use std::time::Duration;

use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{
    config::BillingSettings,
    db::{DbError, DbPool},
    plans::{self, PlanError},
    users::User,
};
use stripe::{Checkout, StripeClient, StripeError};

/// A node's billing, when configured.
#[derive(Clone)]
pub struct Billing {
    pub stripe: StripeClient,
    pub webhook_secret: String,
    pub grace_period: Duration,
    pub tolerance_secs: u64,
}

impl Billing {
    /// `None` when billing is not configured.
    pub fn from_settings(settings: &BillingSettings) -> Result<Option<Self>, String> {
        let (Some(key), Some(secret)) =
            (&settings.stripe_secret_key, &settings.stripe_webhook_secret)
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            stripe: StripeClient::new(&settings.stripe_api_base, key)?,
            webhook_secret: secret.clone(),
            grace_period: Duration::from_secs(settings.grace_period_secs),
            tolerance_secs: settings.webhook_tolerance_secs,
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error("plan not found")]
    PlanNotFound,
    #[error("this plan is not sold through Stripe (it has no stripe_price_id)")]
    NotForSale,
    #[error("you already have a subscription: change or cancel it in the customer portal")]
    AlreadySubscribed,
    #[error("you have no subscription to manage yet: upgrade first")]
    NoCustomer,
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error("not a Stripe event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for BillingError {
    fn from(error: tokio_postgres::Error) -> Self {
        BillingError::Db(error.into())
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for BillingError {
    fn from(error: bb8::RunError<tokio_postgres::Error>) -> Self {
        BillingError::Db(error.into())
    }
}

impl From<PlanError> for BillingError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::NotFound => BillingError::PlanNotFound,
            PlanError::Db(error) => BillingError::Db(error),
            other => BillingError::BadEvent(other.to_string()),
        }
    }
}

/// Subscription statuses under which a new checkout would make a second subscription.
const LIVE_STATUSES: [&str; 4] = ["active", "trialing", "past_due", "unpaid"];

/// Starts a Stripe Checkout for `user` to subscribe to plan `plan_id`; answers the URL to
/// send the browser to. `public_url` is where Stripe sends the user back.
pub async fn checkout(
    billing: &Billing,
    pool: &DbPool,
    user: &User,
    plan_id: Uuid,
    public_url: &str,
) -> Result<String, BillingError> {
    let plan = {
        let conn = pool.get().await?;
        plans::get(&**conn, plan_id).await?
    };
    let price = plan.stripe_price_id.ok_or(BillingError::NotForSale)?;
    let (customer, status) = match account(pool, user.id).await? {
        Some(found) => found,
        None => (create_customer(billing, pool, user).await?, None),
    };
    if status
        .as_deref()
        .is_some_and(|s| LIVE_STATUSES.contains(&s))
    {
        return Err(BillingError::AlreadySubscribed);
    }
    let user_id = user.id.to_string();
    let plan_id = plan.id.to_string();
    let success_url = format!("{public_url}/?billing=success");
    let cancel_url = format!("{public_url}/?billing=cancelled");
    let (_, url) = billing
        .stripe
        .create_checkout_session(&Checkout {
            customer: &customer,
            price: &price,
            user_id: &user_id,
            plan_id: &plan_id,
            success_url: &success_url,
            cancel_url: &cancel_url,
        })
        .await?;
    Ok(url)
}

/// A customer portal session for `user`'s Stripe customer; answers its URL.
pub async fn portal(
    billing: &Billing,
    pool: &DbPool,
    user: &User,
    public_url: &str,
) -> Result<String, BillingError> {
    let (customer, _) = account(pool, user.id)
        .await?
        .ok_or(BillingError::NoCustomer)?;
    let return_url = format!("{public_url}/");
    Ok(billing
        .stripe
        .create_portal_session(&customer, &return_url)
        .await?)
}

/// The account's Stripe customer and subscription status, if it has a customer.
async fn account(
    pool: &DbPool,
    user_id: Uuid,
) -> Result<Option<(String, Option<String>)>, BillingError> {
    let conn = pool.get().await?;
    let rows = conn
        .query_typed(
            "SELECT stripe_customer_id, subscription_status FROM billing_accounts
             WHERE user_id = $1",
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(rows.first().map(|row| (row.get(0), row.get(1))))
}

/// Creates the account's Stripe customer and stores it. Two checkouts racing may both create
/// one at Stripe; the first stored wins and the other stays unused there.
async fn create_customer(
    billing: &Billing,
    pool: &DbPool,
    user: &User,
) -> Result<String, BillingError> {
    let created = billing
        .stripe
        .create_customer(user.email.as_str(), &user.id.to_string())
        .await?;
    let conn = pool.get().await?;
    let row = conn
        .query_typed_one(
            "WITH stored AS (
                 INSERT INTO billing_accounts (user_id, stripe_customer_id) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO NOTHING RETURNING stripe_customer_id)
             SELECT stripe_customer_id FROM stored
             UNION ALL
             SELECT stripe_customer_id FROM billing_accounts WHERE user_id = $1
             LIMIT 1",
            &[(&user.id, Type::UUID), (&created, Type::TEXT)],
        )
        .await?;
    Ok(row.get(0))
}
