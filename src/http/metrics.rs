//! `GET /metrics`: the node's Prometheus metrics (see [`crate::metrics`]), for a scraper with
//! the configured bearer token; 404 when no token is configured, 401 without the right one.

use std::sync::Arc;

use warp::{Filter, Rejection, Reply, http::header};

use super::{
    error::{ApiError, respond},
    filters::with_state,
};
use crate::{metrics, state::AppState};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .and(warp::header::optional::<String>("authorization"))
        .then(|state, authorization| async move { respond(scrape(state, authorization).await) })
}

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
