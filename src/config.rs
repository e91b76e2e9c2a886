//! Layered configuration: built-in defaults, then the TOML file (`config/botwave.toml` documents
//! every key), then `BOTWAVE_*` environment variables, then command-line flags. Anything invalid
//! stops the node at start with a message naming the key.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {var} (config key `{key}`): {message}")]
    Env {
        var: &'static str,
        key: &'static str,
        message: String,
    },
    #[error("invalid config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP/websocket front end listens on.
    pub listen: SocketAddr,
    /// Where generated secrets and the embedded database live.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    pub whatsapp: WhatsappSettings,
    pub cluster: ClusterSettings,
    pub smtp: SmtpSettings,
    pub metrics: MetricsSettings,
    pub webhooks: WebhookSettings,
    pub limits: LimitSettings,
    pub plans: PlanSettings,
    pub billing: BillingSettings,
    /// Per-number pacing (anti-ban) of every account an admin did not give settings of its
    /// own (`/api/admin/users/{id}/pacing`).
    pub pacing: PacingSettings,
}

/// Request rate limits on the API: every account's token bucket, which all its API keys spend
/// from (a key may have a lower rate of its own). Held across the cluster, in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Requests per second an account's API keys may make together, sustained.
    pub requests_per_second: f64,
    /// Requests they may make at once, after a quiet spell.
    pub burst: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 20.0,
            burst: 100,
        }
    }
}

/// Plans and quotas (`src/plans.rs`): the plans themselves are in the database, edited by
/// admins; this only says whether their limits hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanSettings {
    /// Refuse sends over a plan's message quotas (429 `quota_exceeded`) and new API keys and
    /// webhook endpoints over its limits (403 `plan_limit_reached`). Off: usage is still
    /// counted and shown, nothing is refused (an installation that does not sell access).
    pub enforce: bool,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self { enforce: true }
    }
}

/// Subscription billing through Stripe (`src/billing/`): off unless both secrets are set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingSettings {
    /// The Stripe secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`).
    pub stripe_secret_key: Option<String>,
    /// The signing secret of the webhook endpoint set up in Stripe (`whsec_…`).
    pub stripe_webhook_secret: Option<String>,
    /// Where Stripe's API is; tests point it at a local stand-in.
    pub stripe_api_base: String,
    /// After a failed payment the account keeps its paid plan this long, then falls back to
    /// the default plan (until a payment succeeds).
    pub grace_period_secs: u64,
    /// A webhook whose signed timestamp is further than this from now is refused (replays).
    pub webhook_tolerance_secs: u64,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: "https://api.stripe.com".into(),
            grace_period_secs: 3 * 24 * 3600,
            webhook_tolerance_secs: 300,
        }
    }
}

impl LimitSettings {
    pub fn account_rate(&self) -> crate::auth::request_limit::Rate {
        crate::auth::request_limit::Rate {
            per_second: self.requests_per_second,
            burst: self.burst,
        }
    }
}

impl BillingSettings {
    /// Billing is on: both secrets are set.
    pub fn enabled(&self) -> bool {
        self.stripe_secret_key.is_some() && self.stripe_webhook_secret.is_some()
    }
}

pub use botwave_actors::pacing::{PacingSettings, QuietHoursSettings};

/// Prometheus metrics at `/metrics` on the main listener, for scrapers that present `token`
/// as a bearer token. Without a token `/metrics` is off (404).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    pub token: Option<String>,
}

/// Shortest metrics token accepted: it guards an endpoint anyone can reach.
const MIN_METRICS_TOKEN_LEN: usize = 16;

/// Where the node sends email (password reset links). Without `url` it sends none, and the
/// forgot-password route says so.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// `smtp://user:pass@host:587?tls=required`, `smtps://user:pass@host:465`, or plain
    /// `smtp://127.0.0.1:2525` for a local relay.
    pub url: Option<String>,
    /// The sender, e.g. `botwave <noreply@example.com>`; required with `url`.
    pub from: Option<String>,
}

/// How webhook events are delivered to the users' receivers (`src/webhooks/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Deliver to loopback, private, link-local and other non-public addresses. Off by
    /// default: a user could otherwise make the node call services on its own network.
    pub allow_private_targets: bool,
    /// Attempts of one event before it goes to the dead-letter list.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long, with jitter.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts (a receiver's `Retry-After` included).
    pub retry_max_secs: u64,
    /// To open the TCP (and TLS) connection to a receiver.
    pub connect_timeout_ms: u64,
    /// For the whole request, from connecting to the end of the answer.
    pub request_timeout_ms: u64,
    /// Failed attempts in a row after which an endpoint is paused until its user resumes it.
    pub pause_after_failures: u32,
    /// Requests in flight per node, and per endpoint per node.
    pub concurrency: usize,
    pub concurrency_per_endpoint: usize,
    /// How often a node looks for due deliveries when nothing woke it.
    pub poll_interval_ms: u64,
    /// How long an endpoint's secret still signs (beside the new one) after a rotation, so
    /// receivers can switch over; 0 ends it at once.
    pub secret_grace_secs: u64,
    /// Pending events kept per endpoint (a paused or failing one queues them); beyond it the
    /// oldest are dropped and counted in the endpoint's `dropped`.
    pub max_backlog: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            max_attempts: 10,
            retry_base_ms: 5_000,
            retry_max_secs: 3_600,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            pause_after_failures: 50,
            concurrency: 64,
            concurrency_per_endpoint: 4,
            poll_interval_ms: 1_000,
            secret_grace_secs: 86_400,
            max_backlog: 10_000,
        }
    }
}

/// How this node joins the others on the same database. Without `listen` it still runs
/// the cluster's rules (leases, fencing) as a cluster of one, and only links to nobody.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// This node's name, unique in the cluster; each process start is also a new
    /// incarnation of it. Defaults to the host name.
    pub node_name: Option<String>,
    /// `host:port` other nodes dial this one at (port 0 picks a free one).
    pub listen: Option<SocketAddr>,
    /// Other nodes' `host:port` to dial at start; the rest are found in the database.
    pub peers: Vec<String>,
    /// Shared by every node: links between nodes authenticate with it. Required with
    /// `listen`; it does not encrypt (the `tls_*` files do).
    pub cookie: Option<String>,
    /// PEM files for mutual TLS between nodes, all three or none: this node's certificate
    /// chain, its private key, and the CA that signs every node's certificate.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// How long a session lease lives without renewal: a node that dies has its sessions
    /// running elsewhere after about this long.
    pub lease_ttl_secs: u64,
    /// Longest a stopping node takes to hand its sessions over and close its sockets.
    pub shutdown_timeout_secs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            node_name: None,
            listen: None,
            peers: Vec::new(),
            cookie: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            lease_ttl_secs: 8,
            shutdown_timeout_secs: 30,
        }
    }
}

impl ClusterSettings {
    /// The configured node name, or the host's name.
    pub fn node_name(&self) -> String {
        if let Some(name) = &self.node_name {
            return name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "botwave".to_owned())
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// Minimum length of the cluster cookie.
const MIN_COOKIE_LEN: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` URL; absent means the embedded cluster under `data_dir`.
    pub url: Option<String>,
    pub pool_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// HS256 signing secret for session tokens; absent means one generated in `data_dir`.
    pub jwt_secret: Option<String>,
    pub token_ttl_minutes: u64,
    /// Login attempts allowed per client address per minute.
    pub login_attempts_per_ip: u32,
    /// Login attempts allowed per email address per minute.
    pub login_attempts_per_email: u32,
    /// How long a password reset link works.
    pub password_reset_ttl_minutes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// The address users reach the dashboard at, e.g. `https://wa.example.com`: links in
    /// emails point there. Absent, they point at `listen`, which suits a local install only.
    pub public_url: Option<String>,
    /// Largest request body accepted; bigger ones get 413.
    pub max_body_bytes: u64,
    /// Take the client's address from the last `X-Forwarded-For` entry (what the reverse proxy
    /// saw) instead of the connection's. Only behind a proxy that sets it and that is the only
    /// way in: otherwise clients could pick their own address.
    pub trust_forwarded_for: bool,
    /// Open connections the node serves at once (websockets included). At the cap the
    /// longest-idle connection is closed to make room; if none is idle, new ones get 503.
    pub max_connections: usize,
    /// The same cap per client address (of the TCP connection, so behind a reverse proxy this
    /// is the proxy's: keep it above the proxy's own connection count).
    pub max_connections_per_ip: usize,
    /// From the first byte of a request until its headers are complete.
    pub header_read_timeout_secs: u64,
    /// For a request body to arrive in full; slower ones get 408.
    pub body_read_timeout_secs: u64,
    /// An open connection with no request and no traffic is closed after this.
    pub keep_alive_timeout_secs: u64,
    /// Longest a request may take from its headers to its answer; then the connection closes.
    pub request_timeout_secs: u64,
    /// Largest request line and headers together; larger requests get 431.
    pub max_header_bytes: usize,
    /// Websockets: the server pings this often and closes a socket that has not answered
    /// within `ws_pong_timeout_secs`.
    pub ws_ping_interval_secs: u64,
    pub ws_pong_timeout_secs: u64,
    /// Open websockets per account and per client address.
    pub max_websockets_per_user: usize,
    pub max_websockets_per_ip: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsappSettings {
    /// WhatsApp Web websocket URL; absent means WhatsApp's real endpoint.
    pub url: Option<String>,
    /// Sessions per second this node starts when it takes sessions on: at start, after another
    /// node died, or when one joins. Paced so that neither the database pool nor WhatsApp
    /// sees thousands of logins at once.
    pub resume_rate: u32,
}

impl Default for WhatsappSettings {
    fn default() -> Self {
        Self {
            url: None,
            resume_rate: 100,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".botwave-data"),
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            http: HttpSettings::default(),
            whatsapp: WhatsappSettings::default(),
            cluster: ClusterSettings::default(),
            smtp: SmtpSettings::default(),
            metrics: MetricsSettings::default(),
            webhooks: WebhookSettings::default(),
            limits: LimitSettings::default(),
            plans: PlanSettings::default(),
            billing: BillingSettings::default(),
            pacing: PacingSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_minutes: 12 * 60,
            login_attempts_per_ip: 30,
            login_attempts_per_email: 5,
            password_reset_ttl_minutes: 30,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            max_body_bytes: 64 * 1024,
            trust_forwarded_for: false,
            max_connections: 4096,
            max_connections_per_ip: 256,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 15,
            keep_alive_timeout_secs: 30,
            request_timeout_secs: 60,
            max_header_bytes: 16 * 1024,
            ws_ping_interval_secs: 20,
            ws_pong_timeout_secs: 10,
            max_websockets_per_user: 16,
            max_websockets_per_ip: 64,
        }
    }
}

/// The config key of a pacing setting.
fn pacing_key(field: &str) -> &'static str {
    match field {
        "enabled" => "pacing.enabled",
        "min_gap_ms" => "pacing.min_gap_ms",
        "jitter_ms" => "pacing.jitter_ms",
        "per_minute" => "pacing.per_minute",
        "per_hour" => "pacing.per_hour",
        "per_day" => "pacing.per_day",
        "time_zone" => "pacing.time_zone",
        "warmup_daily_caps" => "pacing.warmup_daily_caps",
        _ => "pacing.quiet_hours",
    }
}

/// Minimum length of a configured JWT secret: HS256 wants at least 256 bits of key.
const MIN_JWT_SECRET_LEN: usize = 32;

impl Settings {
    /// Defaults, overlaid by `file` (when given) and then by the `BOTWAVE_*` variables of `env`.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|error| ConfigError::Parse {
                    path: path.to_owned(),
                    message: error.to_string(),
                })?
            }
            None => Settings::default(),
        };
        settings.apply_env(env)?;
        settings.validate()?;
        Ok(settings)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(
            var: &'static str,
            key: &'static str,
            value: &str,
        ) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|error: T::Err| ConfigError::Env {
                    var,
                    key,
                    message: error.to_string(),
                })
        }
        let set = |value: String| (!value.trim().is_empty()).then(|| value.trim().to_owned());

        // Each variable overrides one key; the key's name is the field's path.
        macro_rules! parsed {
            ($($var:literal => $($field:ident).+;)*) => {$(
                if let Some(v) = env($var) {
                    self.$($field).+ = parse($var, stringify!($($field).+), &v)?;
                }
            )*};
        }
        parsed! {
            "BOTWAVE_LISTEN" => listen;
            "BOTWAVE_DATABASE_POOL_SIZE" => database.pool_size;
            "BOTWAVE_TOKEN_TTL_MINUTES" => auth.token_ttl_minutes;
            "BOTWAVE_LOGIN_ATTEMPTS_PER_IP" => auth.login_attempts_per_ip;
            "BOTWAVE_LOGIN_ATTEMPTS_PER_EMAIL" => auth.login_attempts_per_email;
            "BOTWAVE_PASSWORD_RESET_TTL_MINUTES" => auth.password_reset_ttl_minutes;
            "BOTWAVE_MAX_BODY_BYTES" => http.max_body_bytes;
            "BOTWAVE_TRUST_FORWARDED_FOR" => http.trust_forwarded_for;
            "BOTWAVE_MAX_CONNECTIONS" => http.max_connections;
            "BOTWAVE_MAX_CONNECTIONS_PER_IP" => http.max_connections_per_ip;
            "BOTWAVE_HEADER_READ_TIMEOUT_SECS" => http.header_read_timeout_secs;
            "BOTWAVE_BODY_READ_TIMEOUT_SECS" => http.body_read_timeout_secs;
            "BOTWAVE_KEEP_ALIVE_TIMEOUT_SECS" => http.keep_alive_timeout_secs;
            "BOTWAVE_REQUEST_TIMEOUT_SECS" => http.request_timeout_secs;
            "BOTWAVE_MAX_HEADER_BYTES" => http.max_header_bytes;
            "BOTWAVE_WS_PING_INTERVAL_SECS" => http.ws_ping_interval_secs;
            "BOTWAVE_WS_PONG_TIMEOUT_SECS" => http.ws_pong_timeout_secs;
            "BOTWAVE_MAX_WEBSOCKETS_PER_USER" => http.max_websockets_per_user;
            "BOTWAVE_MAX_WEBSOCKETS_PER_IP" => http.max_websockets_per_ip;
            "BOTWAVE_WHATSAPP_RESUME_RATE" => whatsapp.resume_rate;
            "BOTWAVE_CLUSTER_LEASE_TTL_SECS" => cluster.lease_ttl_secs;
            "BOTWAVE_WEBHOOKS_ALLOW_PRIVATE_TARGETS" => webhooks.allow_private_targets;
            "BOTWAVE_WEBHOOKS_MAX_ATTEMPTS" => webhooks.max_attempts;
            "BOTWAVE_WEBHOOKS_RETRY_BASE_MS" => webhooks.retry_base_ms;
            "BOTWAVE_WEBHOOKS_RETRY_MAX_SECS" => webhooks.retry_max_secs;
            "BOTWAVE_WEBHOOKS_CONNECT_TIMEOUT_MS" => webhooks.connect_timeout_ms;
            "BOTWAVE_WEBHOOKS_REQUEST_TIMEOUT_MS" => webhooks.request_timeout_ms;
            "BOTWAVE_WEBHOOKS_PAUSE_AFTER_FAILURES" => webhooks.pause_after_failures;
            "BOTWAVE_WEBHOOKS_CONCURRENCY" => webhooks.concurrency;
            "BOTWAVE_WEBHOOKS_SECRET_GRACE_SECS" => webhooks.secret_grace_secs;
            "BOTWAVE_WEBHOOKS_MAX_BACKLOG" => webhooks.max_backlog;
            "BOTWAVE_CLUSTER_SHUTDOWN_TIMEOUT_SECS" => cluster.shutdown_timeout_secs;
            "BOTWAVE_LIMITS_REQUESTS_PER_SECOND" => limits.requests_per_second;
            "BOTWAVE_LIMITS_BURST" => limits.burst;
            "BOTWAVE_PLANS_ENFORCE" => plans.enforce;
            "BOTWAVE_BILLING_GRACE_PERIOD_SECS" => billing.grace_period_secs;
            "BOTWAVE_BILLING_WEBHOOK_TOLERANCE_SECS" => billing.webhook_tolerance_secs;
            "BOTWAVE_PACING_ENABLED" => pacing.enabled;
            "BOTWAVE_PACING_MIN_GAP_MS" => pacing.min_gap_ms;
            "BOTWAVE_PACING_JITTER_MS" => pacing.jitter_ms;
            "BOTWAVE_PACING_PER_MINUTE" => pacing.per_minute;
            "BOTWAVE_PACING_PER_HOUR" => pacing.per_hour;
            "BOTWAVE_PACING_PER_DAY" => pacing.per_day;
        }
        if let Some(v) = env("BOTWAVE_PACING_TIME_ZONE") {
            self.pacing.time_zone = v.trim().to_owned();
        }
        if let Some(v) = env("BOTWAVE_PACING_QUIET_HOURS") {
            // `22:00-07:00`, or empty for none.
            self.pacing.quiet_hours = match set(v) {
                None => None,
                Some(v) => match v.split_once('-') {
                    Some((start, end)) => Some(QuietHoursSettings {
                        start: start.trim().to_owned(),
                        end: end.trim().to_owned(),
                    }),
                    None => {
                        return Err(ConfigError::Env {
                            var: "BOTWAVE_PACING_QUIET_HOURS",
                            key: "pacing.quiet_hours",
                            message: "expected START-END, e.g. 22:00-07:00, or empty".into(),
                        });
                    }
                },
            };
        }
        if let Some(v) = env("BOTWAVE_PACING_WARMUP_DAILY_CAPS") {
            self.pacing.warmup_daily_caps = v
                .split(',')
                .map(str::trim)
                .filter(|cap| !cap.is_empty())
                .map(|cap| {
                    parse(
                        "BOTWAVE_PACING_WARMUP_DAILY_CAPS",
                        "pacing.warmup_daily_caps",
                        cap,
                    )
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_NODE_NAME") {
            self.cluster.node_name = set(v);
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_LISTEN") {
            self.cluster.listen = match set(v) {
                Some(v) => Some(parse("BOTWAVE_CLUSTER_LISTEN", "cluster.listen", &v)?),
                None => None,
            };
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_PEERS") {
            self.cluster.peers = v
                .split(',')
                .map(str::trim)
                .filter(|peer| !peer.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_COOKIE") {
            self.cluster.cookie = set(v);
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_TLS_CERT") {
            self.cluster.tls_cert = set(v).map(PathBuf::from);
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_TLS_KEY") {
            self.cluster.tls_key = set(v).map(PathBuf::from);
        }
        if let Some(v) = env("BOTWAVE_CLUSTER_TLS_CA") {
            self.cluster.tls_ca = set(v).map(PathBuf::from);
        }
        if let Some(v) = env("BOTWAVE_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("BOTWAVE_DATABASE_URL") {
            self.database.url = set(v);
        }
        if let Some(v) = env("BOTWAVE_JWT_SECRET") {
            self.auth.jwt_secret = set(v);
        }
        if let Some(v) = env("BOTWAVE_PUBLIC_URL") {
            self.http.public_url = set(v);
        }
        if let Some(v) = env("BOTWAVE_METRICS_TOKEN") {
            self.metrics.token = set(v);
        }
        if let Some(v) = env("BOTWAVE_SMTP_URL") {
            self.smtp.url = set(v);
        }
        if let Some(v) = env("BOTWAVE_SMTP_FROM") {
            self.smtp.from = set(v);
        }
        if let Some(v) = env("BOTWAVE_BILLING_STRIPE_SECRET_KEY") {
            self.billing.stripe_secret_key = set(v);
        }
        if let Some(v) = env("BOTWAVE_BILLING_STRIPE_WEBHOOK_SECRET") {
            self.billing.stripe_webhook_secret = set(v);
        }
        if let Some(v) = env("BOTWAVE_BILLING_STRIPE_API_BASE").and_then(set) {
            self.billing.stripe_api_base = v;
        }
        if let Some(v) = env("BOTWAVE_WHATSAPP_URL") {
            self.whatsapp.url = set(v);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if let Some(url) = &self.database.url
            && let Err(error) = url.parse::<tokio_postgres::Config>()
        {
            return invalid("database.url", &format!("not a PostgreSQL URL: {error}"));
        }
        if let Some(url) = &self.http.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("http.public_url", "must start with http:// or https://");
        }
        if let Some(token) = &self.metrics.token
            && token.len() < MIN_METRICS_TOKEN_LEN
        {
            return invalid(
                "metrics.token",
                &format!("must be at least {MIN_METRICS_TOKEN_LEN} characters"),
            );
        }
        if self.auth.password_reset_ttl_minutes == 0 {
            return invalid("auth.password_reset_ttl_minutes", "must be at least 1");
        }
        if let Err(message) = crate::mail::check_settings(&self.smtp) {
            return invalid("smtp", &message);
        }
        let billing = &self.billing;
        if billing.stripe_secret_key.is_some() != billing.stripe_webhook_secret.is_some() {
            return invalid(
                "billing.stripe_secret_key",
                "set both billing.stripe_secret_key and billing.stripe_webhook_secret, or neither",
            );
        }
        match url::Url::parse(&billing.stripe_api_base) {
            Ok(base) if matches!(base.scheme(), "http" | "https") && base.host().is_some() => {}
            _ => {
                return invalid(
                    "billing.stripe_api_base",
                    "must be an http:// or https:// URL",
                );
            }
        }
        if !(1..=3600).contains(&billing.webhook_tolerance_secs) {
            return invalid("billing.webhook_tolerance_secs", "must be 1 to 3600");
        }
        if billing.grace_period_secs > 365 * 24 * 3600 {
            return invalid("billing.grace_period_secs", "must be at most a year");
        }
        if self.whatsapp.resume_rate == 0 {
            return invalid("whatsapp.resume_rate", "must be at least 1");
        }
        if !(self.limits.requests_per_second.is_finite() && self.limits.requests_per_second > 0.0) {
            return invalid("limits.requests_per_second", "must be a number above 0");
        }
        if self.limits.burst == 0 {
            return invalid("limits.burst", "must be at least 1");
        }
        if self.database.pool_size == 0 {
            return invalid("database.pool_size", "must be at least 1");
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < MIN_JWT_SECRET_LEN
        {
            return invalid(
                "auth.jwt_secret",
                &format!("must be at least {MIN_JWT_SECRET_LEN} characters"),
            );
        }
        if self.auth.token_ttl_minutes == 0 {
            return invalid("auth.token_ttl_minutes", "must be at least 1");
        }
        if self.auth.login_attempts_per_ip == 0 || self.auth.login_attempts_per_email == 0 {
            return invalid("auth.login_attempts_per_*", "must be at least 1");
        }
        if self.http.max_body_bytes < 1024 {
            return invalid("http.max_body_bytes", "must be at least 1024");
        }
        let http = &self.http;
        if http.max_connections == 0 || http.max_connections_per_ip == 0 {
            return invalid("http.max_connections*", "must be at least 1");
        }
        if http.max_websockets_per_user == 0 || http.max_websockets_per_ip == 0 {
            return invalid("http.max_websockets_*", "must be at least 1");
        }
        for (key, secs) in [
            (
                "http.header_read_timeout_secs",
                http.header_read_timeout_secs,
            ),
            ("http.body_read_timeout_secs", http.body_read_timeout_secs),
            ("http.keep_alive_timeout_secs", http.keep_alive_timeout_secs),
            ("http.request_timeout_secs", http.request_timeout_secs),
            ("http.ws_ping_interval_secs", http.ws_ping_interval_secs),
            ("http.ws_pong_timeout_secs", http.ws_pong_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return invalid(key, "must be 1 to 3600 seconds");
            }
        }
        let hooks = &self.webhooks;
        if !(1..=100).contains(&hooks.max_attempts) {
            return invalid("webhooks.max_attempts", "must be 1 to 100");
        }
        if hooks.retry_base_ms == 0 || hooks.retry_max_secs == 0 {
            return invalid("webhooks.retry_*", "must be at least 1");
        }
        if !(100..=60_000).contains(&hooks.connect_timeout_ms)
            || !(100..=300_000).contains(&hooks.request_timeout_ms)
        {
            return invalid(
                "webhooks.*_timeout_ms",
                "connect 100 to 60000 ms, request 100 to 300000 ms",
            );
        }
        if hooks.pause_after_failures == 0
            || hooks.concurrency == 0
            || hooks.concurrency_per_endpoint == 0
            || hooks.poll_interval_ms == 0
        {
            return invalid("webhooks.*", "counts and intervals must be at least 1");
        }
        if !(1..=10_000_000).contains(&hooks.max_backlog) {
            return invalid("webhooks.max_backlog", "must be 1 to 10000000");
        }
        if hooks.secret_grace_secs > 30 * 86_400 {
            return invalid(
                "webhooks.secret_grace_secs",
                "must be 0 to 2592000 (30 days)",
            );
        }
        if !(8192..=1024 * 1024).contains(&http.max_header_bytes) {
            return invalid("http.max_header_bytes", "must be 8192 to 1048576");
        }
        if let Some(url) = &self.whatsapp.url
            && !(url.starts_with("ws://") || url.starts_with("wss://"))
        {
            return invalid("whatsapp.url", "must be a ws:// or wss:// URL");
        }
        let cluster = &self.cluster;
        if cluster
            .node_name
            .as_ref()
            .is_some_and(|name| name.is_empty() || name.len() > 64 || name.contains(['@', ' ']))
        {
            return invalid(
                "cluster.node_name",
                "must be 1 to 64 characters without '@' or spaces",
            );
        }
        if cluster.listen.is_some()
            && cluster
                .cookie
                .as_ref()
                .is_none_or(|cookie| cookie.len() < MIN_COOKIE_LEN)
        {
            return invalid(
                "cluster.cookie",
                &format!(
                    "must be set, at least {MIN_COOKIE_LEN} characters, when cluster.listen is"
                ),
            );
        }
        if cluster.listen.is_some() && self.auth.jwt_secret.is_none() {
            // A generated secret is per node: a login on one node would fail on the others.
            return invalid(
                "auth.jwt_secret",
                "must be set (the same on every node) when cluster.listen is",
            );
        }
        if !cluster.peers.is_empty() && cluster.listen.is_none() {
            return invalid("cluster.listen", "must be set when cluster.peers are");
        }
        let tls_files = [&cluster.tls_cert, &cluster.tls_key, &cluster.tls_ca];
        let tls_set = tls_files.iter().filter(|file| file.is_some()).count();
        if tls_files.iter().any(|file| {
            file.as_ref()
                .is_some_and(|path| path.as_os_str().is_empty())
        }) {
            return invalid("cluster.tls_*", "must not be empty paths");
        }
        if tls_set != 0 && tls_set != tls_files.len() {
            return invalid(
                "cluster.tls_*",
                "set all three of cluster.tls_cert, cluster.tls_key and cluster.tls_ca, or none",
            );
        }
        if tls_set != 0 && cluster.listen.is_none() {
            return invalid("cluster.listen", "must be set when cluster.tls_* are");
        }
        if let Some(peer) = cluster.peers.iter().find(|peer| !peer.contains(':')) {
            return invalid("cluster.peers", &format!("{peer:?} is not host:port"));
        }
        if !(3..=300).contains(&cluster.lease_ttl_secs) {
            return invalid("cluster.lease_ttl_secs", "must be 3 to 300 seconds");
        }
        if !(1..=3600).contains(&cluster.shutdown_timeout_secs) {
            return invalid("cluster.shutdown_timeout_secs", "must be 1 to 3600 seconds");
        }
        if let Err(error) = self.pacing.check() {
            return Err(ConfigError::Invalid {
                key: pacing_key(error.field),
                message: error.message,
            });
        }
        Ok(())
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.auth.token_ttl_minutes * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("botwave-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("botwave.toml");
        std::fs::write(&path, file).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let result = Settings::load(Some(&path), |key| env.get(key).cloned());
        std::fs::remove_dir_all(dir).unwrap();
        result
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings = load(
            "listen = \"127.0.0.1:9000\"\n[database]\npool_size = 4\n",
            &[
                ("BOTWAVE_DATABASE_POOL_SIZE", "7"),
                ("BOTWAVE_DATA_DIR", "/srv/bw"),
            ],
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.database.pool_size, 7);
        assert_eq!(settings.data_dir, PathBuf::from("/srv/bw"));
    }

    #[test]
    fn billing_and_plans_come_from_the_file_and_the_environment() {
        let off = load("", &[]).unwrap();
        assert!(!off.billing.enabled());
        assert!(off.plans.enforce);
        assert_eq!(off.billing.stripe_api_base, "https://api.stripe.com");
        let on = load(
            "[billing]\nstripe_secret_key = \"sk_test_1\"\ngrace_period_secs = 60\n",
            &[
                ("BOTWAVE_BILLING_STRIPE_WEBHOOK_SECRET", "whsec_1"),
                ("BOTWAVE_BILLING_STRIPE_API_BASE", "http://127.0.0.1:12111"),
                ("BOTWAVE_PLANS_ENFORCE", "false"),
            ],
        )
        .unwrap();
        assert!(on.billing.enabled());
        assert!(!on.plans.enforce);
        assert_eq!(on.billing.grace_period_secs, 60);
        assert_eq!(on.billing.stripe_api_base, "http://127.0.0.1:12111");
        let half = load("[billing]\nstripe_secret_key = \"sk_test_1\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(half.contains("stripe_webhook_secret"), "{half}");
        let bad_base = load("[billing]\nstripe_api_base = \"ftp://x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(bad_base.contains("stripe_api_base"), "{bad_base}");
    }

    #[test]
    fn the_shipped_config_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/botwave.toml");
        Settings::load(Some(std::path::Path::new(path)), |_| None).unwrap();
    }

    #[test]
    fn request_limits_come_from_the_file_and_the_environment_and_must_be_positive() {
        let settings = load(
            "[limits]\nrequests_per_second = 5.5\nburst = 20\n",
            &[("BOTWAVE_LIMITS_BURST", "30")],
        )
        .unwrap();
        assert_eq!(settings.limits.requests_per_second, 5.5);
        assert_eq!(settings.limits.burst, 30);
        for (file, key) in [
            (
                "[limits]\nrequests_per_second = 0.0\n",
                "limits.requests_per_second",
            ),
            (
                "[limits]\nrequests_per_second = -1.0\n",
                "limits.requests_per_second",
            ),
            ("[limits]\nburst = 0\n", "limits.burst"),
        ] {
            let error = load(file, &[]).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        let error = load("", &[("BOTWAVE_LIMITS_REQUESTS_PER_SECOND", "fast")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("BOTWAVE_LIMITS_REQUESTS_PER_SECOND"),
            "{error}"
        );
    }

    #[test]
    fn errors_name_the_offending_key() {
        let unknown = load("[database]\nurll = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("urll"), "{unknown}");

        let wrong_type = load("[database]\npool_size = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(wrong_type.contains("pool_size"), "{wrong_type}");

        let bad_env = load("", &[("BOTWAVE_LISTEN", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(
            bad_env.contains("BOTWAVE_LISTEN") && bad_env.contains("listen"),
            "{bad_env}"
        );

        let short_secret = load("[auth]\njwt_secret = \"short\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(short_secret.contains("auth.jwt_secret"), "{short_secret}");

        let bad_cap = load("", &[("BOTWAVE_MAX_CONNECTIONS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(
            bad_cap.contains("BOTWAVE_MAX_CONNECTIONS")
                && bad_cap.contains("`http.max_connections`"),
            "{bad_cap}"
        );

        let stalled = load("", &[("BOTWAVE_WHATSAPP_RESUME_RATE", "0")])
            .unwrap_err()
            .to_string();
        assert!(stalled.contains("whatsapp.resume_rate"), "{stalled}");
        let paced = load(
            "[whatsapp]\nresume_rate = 40\n",
            &[("BOTWAVE_WHATSAPP_RESUME_RATE", "25")],
        )
        .unwrap();
        assert_eq!(
            paced.whatsapp.resume_rate, 25,
            "the variable overrides the file"
        );

        let zero_timeout = load("[http]\nheader_read_timeout_secs = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            zero_timeout.contains("http.header_read_timeout_secs"),
            "{zero_timeout}"
        );

        let bad_url = load("", &[("BOTWAVE_WHATSAPP_URL", "http://x")])
            .unwrap_err()
            .to_string();
        assert!(bad_url.contains("whatsapp.url"), "{bad_url}");

        let bad_zone = load("[pacing]\ntime_zone = \"Mars/Olympus\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(bad_zone.contains("pacing.time_zone"), "{bad_zone}");
        let bad_quiet = load("", &[("BOTWAVE_PACING_QUIET_HOURS", "22:00-7")])
            .unwrap_err()
            .to_string();
        assert!(bad_quiet.contains("pacing.quiet_hours"), "{bad_quiet}");
        let negative = load("", &[("BOTWAVE_PACING_MIN_GAP_MS", "-5")])
            .unwrap_err()
            .to_string();
        assert!(negative.contains("pacing.min_gap_ms"), "{negative}");
        let paced = load(
            "[pacing]\nper_day = 20\nquiet_hours = { start = \"22:00\", end = \"07:00\" }\n",
            &[
                ("BOTWAVE_PACING_ENABLED", "false"),
                ("BOTWAVE_PACING_WARMUP_DAILY_CAPS", "5, 10"),
            ],
        )
        .unwrap();
        assert!(!paced.pacing.enabled);
        assert_eq!(paced.pacing.per_day, 20);
        assert_eq!(paced.pacing.warmup_daily_caps, vec![5, 10]);
        assert_eq!(
            paced.pacing.min_gap_ms,
            PacingSettings::default().min_gap_ms
        );

        let no_cookie = load("", &[("BOTWAVE_CLUSTER_LISTEN", "127.0.0.1:7001")])
            .unwrap_err()
            .to_string();
        assert!(no_cookie.contains("cluster.cookie"), "{no_cookie}");
    }

    const CLUSTER_ENV: [(&str, &str); 3] = [
        ("BOTWAVE_CLUSTER_LISTEN", "127.0.0.1:7002"),
        ("BOTWAVE_CLUSTER_COOKIE", "0123456789abcdef0123"),
        ("BOTWAVE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn cluster_tls_files_come_from_the_file_and_the_environment() {
        let mut env = CLUSTER_ENV.to_vec();
        env.push(("BOTWAVE_CLUSTER_TLS_KEY", "/etc/botwave/tls/env.key"));
        let settings = load(
            "[cluster]\ntls_cert = \"/etc/botwave/tls/node.pem\"\n\
             tls_key = \"/etc/botwave/tls/node.key\"\ntls_ca = \"/etc/botwave/tls/ca.pem\"\n",
            &env,
        )
        .unwrap();
        let cluster = &settings.cluster;
        assert_eq!(
            cluster.tls_cert.as_deref(),
            Some(std::path::Path::new("/etc/botwave/tls/node.pem"))
        );
        assert_eq!(
            cluster.tls_key.as_deref(),
            Some(std::path::Path::new("/etc/botwave/tls/env.key"))
        );
        assert_eq!(
            cluster.tls_ca.as_deref(),
            Some(std::path::Path::new("/etc/botwave/tls/ca.pem"))
        );

        let none = load("", &CLUSTER_ENV).unwrap();
        assert!(none.cluster.tls_cert.is_none() && none.cluster.tls_ca.is_none());
    }

    #[test]
    fn cluster_tls_needs_all_three_files_and_a_cluster_listen() {
        let mut env = CLUSTER_ENV.to_vec();
        env.push(("BOTWAVE_CLUSTER_TLS_CERT", "/etc/botwave/tls/node.pem"));
        env.push(("BOTWAVE_CLUSTER_TLS_CA", "/etc/botwave/tls/ca.pem"));
        let partial = load("", &env).unwrap_err().to_string();
        assert!(
            partial.contains("cluster.tls_") && partial.contains("all three"),
            "{partial}"
        );

        let without_listen = load(
            "[cluster]\ntls_cert = \"a.pem\"\ntls_key = \"a.key\"\ntls_ca = \"ca.pem\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            without_listen.contains("cluster.listen"),
            "{without_listen}"
        );
    }

    #[test]
    fn cluster_settings_come_from_the_environment() {
        let settings = load(
            "[cluster]\nnode_name = \"from-file\"\n",
            &[
                ("BOTWAVE_CLUSTER_NODE_NAME", "node-2"),
                ("BOTWAVE_CLUSTER_LISTEN", "127.0.0.1:7002"),
                ("BOTWAVE_CLUSTER_PEERS", "10.0.0.1:7001, 10.0.0.3:7003"),
                ("BOTWAVE_CLUSTER_COOKIE", "0123456789abcdef0123"),
                ("BOTWAVE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ],
        )
        .unwrap();
        assert_eq!(settings.cluster.node_name(), "node-2");
        assert_eq!(settings.cluster.listen.unwrap().port(), 7002);
        assert_eq!(
            settings.cluster.peers,
            vec!["10.0.0.1:7001".to_owned(), "10.0.0.3:7003".to_owned()]
        );
        assert_eq!(
            settings.cluster.cookie.as_deref(),
            Some("0123456789abcdef0123")
        );
    }
}
