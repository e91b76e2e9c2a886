//! `GET /metrics`: the node's Prometheus metrics (see [`crate::metrics`]), for a scraper with
//! the configured bearer token; 404 when no token is configured, 401 without the right one.

use std::sync::Arc;

use warp::{Filter, Reply, http::header};

use super::{
    error::{ApiError, ErrorBody, respond},
    filters::with_state,
    routing::Route,
};
use crate::{metrics, state::AppState};

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![Route::new::<__path_scrape>(|at| {
        at.and(with_state(state.clone()))
            .and(warp::header::optional::<String>("authorization"))
            .then(|state, authorization| async move { respond(scrape(state, authorization).await) })
            .boxed()
    })]
}

/// Prometheus metrics
///
/// This node's metrics in the OpenMetrics text format, for a scraper with `metrics.token`.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`invalid_metrics_token`", body = ErrorBody),
        (status = 404, description = "No `metrics.token` is configured: metrics are off", body = ErrorBody),
        (status = 503, description = "The database's figures cannot be read", body = ErrorBody),
    ))]
async fn scrape(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<impl Reply, ApiError> {
    let Some(expected) = &state.metrics_token else {
        return Err(ApiError::NotFound("route"));
    };
    if !metrics::authorized(expected, authorization.as_deref()) {
        return Err(ApiError::Unauthorized(
            "invalid_metrics_token",
            "send the metrics token as Authorization: Bearer …",
        ));
    }
    let text = metrics::render(&state)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    Ok(warp::reply::with_header(
        text,
        header::CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ))
}
