//! Prometheus metrics, served at `/metrics` behind `metrics.token` (off without one).
//!
//! Two kinds: what this node counted itself (HTTP requests and their latency, its sessions'
//! logins, disconnects, restarts, QR codes, message status changes and send latencies, its
//! webhook attempts and their lag; summed over the nodes of a cluster they count each once), and what the shared database holds at the moment of the
//! scrape (sessions by state, messages by status and source, outbox depth), which every node
//! reports alike: aggregate those with `max`, not `sum`.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use crate::{db::DbError, state::AppState};
use botwave_actors::telemetry::{
    LATENCY_BUCKETS as SEND_LATENCY_BUCKETS, LatencyCounts, STATUSES, Stage,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text::encode},
    metrics::{MetricType, counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot encode the metrics")]
    Encode,
}

impl From<tokio_postgres::Error> for MetricsError {
    fn from(error: tokio_postgres::Error) -> Self {
        MetricsError::Db(error.into())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    status: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// How a webhook attempt ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug)]
pub enum WebhookOutcome {
    Delivered,
    /// Failed, due again later.
    Retry,
    /// Failed for good: into the dead-letter list.
    Dead,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Delivered => "delivered",
            WebhookOutcome::Retry => "retry",
            WebhookOutcome::Dead => "dead",
        }
    }
}

/// Lag buckets of webhook deliveries, in seconds: retries and paused endpoints make minutes
/// and hours normal.
const WEBHOOK_LAG_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// This node's webhook attempts, fed by its delivery worker. Cheap to clone (the series are
/// shared), so the worker and the scrape hold the same ones.
#[derive(Clone)]
pub struct WebhookMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    lag: Histogram,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            lag: Histogram::new(WEBHOOK_LAG_BUCKETS),
        }
    }
}

impl WebhookMetrics {
    /// An attempt ended with `outcome`; a delivered event took `lag` from being written to
    /// the receiver's answer.
    pub fn attempted(&self, outcome: WebhookOutcome, lag: Duration) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        if matches!(outcome, WebhookOutcome::Delivered) {
            self.lag.observe(lag.as_secs_f64());
        }
    }
}

/// The send latencies the node's sessions timed, one histogram per stage, encoded from a
/// reading of their counters (they live in the actors, which know nothing of Prometheus).
#[derive(Debug)]
struct SendLatency(Vec<(Stage, LatencyCounts)>);

impl EncodeMetric for SendLatency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (stage, counts) in &self.0 {
            let labels = StageLabels {
                stage: stage.as_str(),
            };
            let buckets: Vec<(f64, u64)> = SEND_LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(counts.buckets)
                .collect();
            encoder
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(counts.sum_seconds, counts.count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Latency buckets of HTTP requests, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Distinct route labels kept; paths past that count as `other`. Clients choose paths, so
/// without a cap each made-up one would be a series of its own, kept for the process's life.
const MAX_ROUTES: usize = 256;

/// The node's HTTP counters, fed by every answer.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    routes: Mutex<HashSet<String>>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            routes: Mutex::default(),
        }
    }
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        // Paths no route serves are one label, whatever they are.
        let route = if status == 404 || status == 405 {
            "unmatched".to_owned()
        } else {
            self.bounded(route_of(path))
        };
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    fn bounded(&self, route: String) -> String {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if routes.contains(&route) || routes.len() < MAX_ROUTES && routes.insert(route.clone()) {
            route
        } else {
            "other".to_owned()
        }
    }
}

/// The route a path belongs to, with ids and names as placeholders, so the label has a few
/// dozen values however many accounts, messages and files there are.
pub fn route_of(path: &str) -> String {
    if path == "/" || path == "/reset-password" {
        return "/".to_owned();
    }
    if path.starts_with("/assets/") {
        return "/assets/{name}".to_owned();
    }
    let known = ["/api/", "/ws", "/healthz", "/readyz", "/metrics"];
    if !known.iter().any(|prefix| path.starts_with(prefix)) {
        return "other".to_owned();
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let is_id = segment.len() > 24
                || (!segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()))
                || uuid::Uuid::parse_str(segment).is_ok();
            if is_id { "{id}" } else { segment }
        })
        .take(6)
        .collect();
    segments.join("/")
}

/// Whether `authorization` (the header) carries the configured metrics token.
pub fn authorized(expected: &str, authorization: Option<&str>) -> bool {
    let Some(presented) = authorization
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    // Compare digests: equal length and no early exit on the first differing byte.
    use sha2::{Digest, Sha256};
    let (a, b) = (
        Sha256::digest(presented.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Every metric, encoded for a scrape.
pub async fn render(state: &AppState) -> Result<String, MetricsError> {
    let mut registry = Registry::with_prefix("botwave");
    registry.register(
        "http_requests",
        "HTTP requests answered, by route, method and status",
        state.http_metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by route",
        state.http_metrics.latency.clone(),
    );

    let counts = state.events.telemetry().read();
    let counter = |value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        counter
    };
    registry.register(
        "session_connects",
        "WhatsApp logins of this node's sessions",
        counter(counts.connects),
    );
    registry.register(
        "session_disconnects",
        "WhatsApp connections of this node's sessions that ended",
        counter(counts.disconnects),
    );
    registry.register(
        "session_restarts",
        "Crashed sessions this node restarted",
        counter(counts.restarts),
    );
    registry.register(
        "session_qr_codes",
        "QR codes this node's sessions showed",
        counter(counts.qr_codes),
    );
    registry.register(
        "messages_received",
        "Messages this node's linked numbers received from their contacts",
        counter(counts.messages_received),
    );
    let changes = Family::<StatusLabels, Counter>::default();
    for (status, count) in STATUSES.iter().zip(counts.message_statuses) {
        changes
            .get_or_create(&StatusLabels {
                status: status.as_str().to_owned(),
            })
            .inc_by(count);
    }
    registry.register(
        "message_status_changes",
        "Messages this node's sessions moved to each status",
        changes,
    );
    let latency = Stage::ALL
        .iter()
        .copied()
        .zip(counts.send_latency.iter().cloned())
        .collect();
    registry.register(
        "message_send_latency_seconds",
        "Time messages of this node's sessions took per stage: accepted by the API to sent \
         to WhatsApp, and sent to delivered to the recipient",
        SendLatency(latency),
    );
    registry.register(
        "webhook_attempts",
        "Webhook delivery attempts this node made, by outcome",
        state.webhook_metrics.attempts.clone(),
    );
    registry.register(
        "webhook_delivery_lag_seconds",
        "Time from an event being written to its receiver's successful answer",
        state.webhook_metrics.lag.clone(),
    );

    let pool = state.pool.state();
    let gauge = |value: i64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        gauge
    };
    registry.register(
        "db_pool_connections",
        "Database connections of this node's pool",
        gauge(i64::from(pool.connections)),
    );
    registry.register(
        "db_pool_idle_connections",
        "Idle database connections of this node's pool",
        gauge(i64::from(pool.idle_connections)),
    );
    registry.register(
        "db_pool_waits",
        "Pool checkouts that had to wait for a connection",
        counter(pool.statistics.get_waited),
    );
    registry.register(
        "db_pool_timeouts",
        "Pool checkouts that gave up waiting",
        counter(pool.statistics.get_timed_out),
    );
    registry.register(
        "websocket_connections",
        "Open websockets on this node",
        gauge(state.ws_by_ip.total() as i64),
    );

    let conn = state.pool.get().await.map_err(DbError::from)?;
    let sessions = Family::<StateLabels, Gauge>::default();
    for row in conn
        .query_typed(
            "SELECT state, count(*) FROM wa_sessions GROUP BY state",
            &[],
        )
        .await?
    {
        sessions
            .get_or_create(&StateLabels { state: row.get(0) })
            .set(row.get(1));
    }
    registry.register(
        "sessions",
        "WhatsApp sessions by state, cluster-wide",
        sessions,
    );
    let messages = Family::<MessageLabels, Gauge>::default();
    for row in conn
        .query_typed(
            "SELECT status, source, sum(messages)::bigint FROM message_stats_daily
             GROUP BY status, source",
            &[],
        )
        .await?
    {
        messages
            .get_or_create(&MessageLabels {
                status: row.get(0),
                source: row.get(1),
            })
            .set(row.get(2));
    }
    registry.register(
        "messages",
        "Messages in the log by status and source, cluster-wide",
        messages,
    );
    let depth: i64 = conn
        .query_typed_one(
            "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')",
            &[],
        )
        .await?
        .get(0);
    registry.register(
        "outbox_depth",
        "Messages queued or being sent, cluster-wide",
        gauge(depth),
    );
    let mut text = String::new();
    encode(&mut text, &registry).map_err(|_| MetricsError::Encode)?;
    Ok(text)
}
