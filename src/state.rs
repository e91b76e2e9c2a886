//! What every request handler of a node shares.

use std::{net::IpAddr, time::Duration};

use botwave_actors::{EventHub, SessionManager};

use crate::{
    auth::{
        account_watch::AccountWatch,
        jwt::TokenKeys,
        rate_limit::{FailureBackoff, RateLimiter},
    },
    config::Settings,
    db::DbPool,
    http::{BodyLimits, WsLimits, live::Slots},
    mail::Mailer,
    webhooks::client::DeliveryClient,
};
use uuid::Uuid;

/// Failed guesses of one account's password, from all addresses together, before each further
/// guess must wait (1 s, doubling, at most a minute).
const FREE_FAILURES_PER_ACCOUNT: u32 = 20;

/// How the node reaches the world outside it: email, and the users' webhook receivers.
pub struct Outbound {
    pub mailer: Mailer,
    pub webhook_client: DeliveryClient,
}

pub struct AppState {
    pub pool: DbPool,
    pub tokens: TokenKeys,
    /// Password attempts (logins, registrations, current-password checks) per client address.
    pub login_by_ip: RateLimiter<IpAddr>,
    /// Password guesses per account *and* address: a guesser elsewhere cannot use up the
    /// owner's budget.
    pub login_by_email: RateLimiter<(String, IpAddr)>,
    /// Failed guesses per account from anywhere: a growing delay, never a lock-out.
    pub login_failures: FailureBackoff<String>,
    /// Password reset requests (links asked for, links used) per client address.
    pub reset_by_ip: RateLimiter<IpAddr>,
    /// Password reset links asked for per email address.
    pub reset_by_email: RateLimiter<String>,
    /// How long a password reset link works.
    pub reset_ttl: Duration,
    /// Where links in emails point (`http.public_url`, without a trailing slash).
    pub public_url: String,
    pub mailer: Mailer,
    /// HTTP request counts and latencies, for `/metrics`.
    pub http_metrics: crate::metrics::HttpMetrics,
    /// The webhook worker's attempts and lag, for `/metrics` (the worker holds a clone).
    pub webhook_metrics: crate::metrics::WebhookMetrics,
    /// The bearer token `/metrics` wants; `None`: metrics are off.
    pub metrics_token: Option<String>,
    pub body_limits: BodyLimits,
    /// How long a node's heartbeat counts (`cluster.lease_ttl_secs`).
    pub lease_ttl: Duration,
    pub trust_forwarded_for: bool,
    pub sessions: SessionManager,
    pub events: EventHub,
    /// Account changes, for connections that must stay authorized (websockets).
    pub accounts: AccountWatch,
    pub ws_limits: WsLimits,
    /// Set once the node is stopping: readiness fails and websockets close with 1001.
    pub stopping: tokio::sync::watch::Sender<bool>,
    pub ws_by_user: Slots<Uuid>,
    pub ws_by_ip: Slots<IpAddr>,
    /// In `botwave demo`: the WhatsApp simulator's control URL, so the dashboard can offer
    /// "scan with the simulated phone". `None` on a real node.
    pub demo_simulator: Option<String>,
    /// Webhook deliveries: the client (test pings use it directly) and whether private
    /// targets are allowed (checked when an endpoint is saved, and again at delivery).
    pub webhook_client: DeliveryClient,
    pub webhook_allow_private: bool,
    /// How long a rotated-out webhook secret still signs (`webhooks.secret_grace_secs`).
    pub webhook_secret_grace: Duration,
    /// Every account's request rate (`limits.*`), which its API keys spend from together.
    pub account_rate: crate::auth::request_limit::Rate,
    /// Plans' quotas and limits refuse what passes them (`plans.enforce`).
    pub plans_enforced: bool,
    /// Stripe billing, when configured.
    pub billing: Option<crate::billing::Billing>,
    /// The node's pacing, for accounts without settings of their own (`[pacing]`).
    pub pacing_defaults: botwave_actors::pacing::PacingSettings,
}

impl AppState {
    pub fn new(
        settings: &Settings,
        pool: DbPool,
        jwt_secret: &str,
        sessions: SessionManager,
        events: EventHub,
        accounts: AccountWatch,
        outbound: Outbound,
    ) -> Self {
        let Outbound {
            mailer,
            webhook_client,
        } = outbound;
        let http = &settings.http;
        let ws_limits = WsLimits {
            ping_interval: Duration::from_secs(http.ws_ping_interval_secs),
            pong_timeout: Duration::from_secs(http.ws_pong_timeout_secs),
            max_per_user: http.max_websockets_per_user,
            max_per_ip: http.max_websockets_per_ip,
        };
        let minute = Duration::from_secs(60);
        Self {
            pool,
            tokens: TokenKeys::new(jwt_secret, settings.token_ttl()),
            login_by_ip: RateLimiter::new(settings.auth.login_attempts_per_ip, minute),
            login_by_email: RateLimiter::new(settings.auth.login_attempts_per_email, minute),
            login_failures: FailureBackoff::new(
                FREE_FAILURES_PER_ACCOUNT,
                Duration::from_secs(1),
                Duration::from_secs(60),
                Duration::from_secs(15 * 60),
            ),
            reset_by_ip: RateLimiter::new(
                crate::http::password_reset::REQUESTS_PER_IP,
                crate::http::password_reset::WINDOW,
            ),
            reset_by_email: RateLimiter::new(
                crate::http::password_reset::REQUESTS_PER_EMAIL,
                crate::http::password_reset::WINDOW,
            ),
            reset_ttl: Duration::from_secs(settings.auth.password_reset_ttl_minutes * 60),
            public_url: settings
                .http
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.listen))
                .trim_end_matches('/')
                .to_owned(),
            mailer,
            http_metrics: crate::metrics::HttpMetrics::default(),
            webhook_metrics: crate::metrics::WebhookMetrics::default(),
            metrics_token: settings.metrics.token.clone(),
            lease_ttl: settings.cluster.lease_ttl(),
            stopping: tokio::sync::watch::Sender::new(false),
            body_limits: BodyLimits {
                max_bytes: settings.http.max_body_bytes,
                read_timeout: Duration::from_secs(settings.http.body_read_timeout_secs),
            },
            trust_forwarded_for: settings.http.trust_forwarded_for,
            pacing_defaults: settings.pacing.clone(),
            sessions,
            events,
            accounts,
            ws_limits,
            ws_by_user: Slots::new(ws_limits.max_per_user),
            ws_by_ip: Slots::new(ws_limits.max_per_ip),
            demo_simulator: None,
            webhook_client,
            webhook_allow_private: settings.webhooks.allow_private_targets,
            webhook_secret_grace: Duration::from_secs(settings.webhooks.secret_grace_secs),
            account_rate: settings.limits.account_rate(),
            plans_enforced: settings.plans.enforce,
            billing: None,
        }
    }
}
