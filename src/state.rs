//! What every request handler of a node shares.

use std::{net::IpAddr, time::Duration};

use botwave_actors::{EventHub, SessionManager};

use crate::{
    auth::{
        jwt::TokenKeys,
        rate_limit::{FailureBackoff, RateLimiter},
    },
    config::Settings,
    db::DbPool,
    http::BodyLimits,
};

/// Failed guesses of one account's password, from all addresses together, before each further
/// guess must wait (1 s, doubling, at most a minute).
const FREE_FAILURES_PER_ACCOUNT: u32 = 20;

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
    pub body_limits: BodyLimits,
    pub trust_forwarded_for: bool,
    pub sessions: SessionManager,
    pub events: EventHub,
    /// In `botwave demo`: the WhatsApp simulator's control URL, so the dashboard can offer
    /// "scan with the simulated phone". `None` on a real node.
    pub demo_simulator: Option<String>,
}

impl AppState {
    pub fn new(
        settings: &Settings,
        pool: DbPool,
        jwt_secret: &str,
        sessions: SessionManager,
        events: EventHub,
    ) -> Self {
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
            body_limits: BodyLimits {
                max_bytes: settings.http.max_body_bytes,
                read_timeout: Duration::from_secs(settings.http.body_read_timeout_secs),
            },
            trust_forwarded_for: settings.http.trust_forwarded_for,
            sessions,
            events,
            demo_simulator: None,
        }
    }
}
