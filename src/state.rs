//! What every request handler of a node shares.

use std::{net::IpAddr, time::Duration};

use botwave_actors::{EventHub, SessionManager};

use crate::{
    auth::{jwt::TokenKeys, rate_limit::RateLimiter},
    config::Settings,
    db::DbPool,
    http::BodyLimits,
};

pub struct AppState {
    pub pool: DbPool,
    pub tokens: TokenKeys,
    pub login_by_ip: RateLimiter<IpAddr>,
    pub login_by_email: RateLimiter<String>,
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
