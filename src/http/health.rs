//! Probes for supervisors and load balancers: `/healthz` says the process answers, `/readyz`
//! that it can serve (database reachable, schema up to date, not shutting down).

use std::sync::Arc;

use serde_json::json;
use warp::{Filter, Rejection, Reply, http::StatusCode};

use super::filters::with_state;
use crate::{db::migrate, state::AppState};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({ "status": "ok" })));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .then(readiness);
    healthz.or(readyz)
}

async fn readiness(state: Arc<AppState>) -> impl Reply {
    if *state.stopping.borrow() {
        // Load balancers stop sending here while the node hands its sessions over.
        return warp::reply::with_status(
            warp::reply::json(&json!({ "status": "shutting_down" })),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    let expected = migrate::latest_version();
    let (status, body) = match migrate::applied_version(&state.pool).await {
        Ok(Some(applied)) if applied >= expected => (
            StatusCode::OK,
            json!({ "status": "ready", "schema_version": applied }),
        ),
        Ok(applied) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "migrations_pending", "schema_version": applied, "expected": expected }),
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "database_unavailable", "error": error.to_string() }),
        ),
    };
    warp::reply::with_status(warp::reply::json(&body), status)
}
