//! Probes for supervisors and load balancers: `/healthz` says the process answers, `/readyz`
//! that it can serve (database reachable, schema up to date, not shutting down).

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::{Filter, Reply, http::StatusCode};

use super::{filters::with_state, routing::Route};
use crate::{db::migrate, state::AppState};

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_liveness>(|at| at.map(|| liveness().into_response()).boxed()),
        Route::new::<__path_readiness>(|at| {
            at.and(with_state(state.clone()))
                .then(|state| async move { readiness(state).await.into_response() })
                .boxed()
        }),
    ]
}

/// What `/healthz` and `/readyz` answer.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` (healthz); `ready`, `shutting_down`, `migrations_pending` or
    /// `database_unavailable` (readyz).
    status: String,
    /// The newest migration applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<i32>,
    /// The migration this build expects, while it is not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The process answers
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Always, while the process runs", body = Health)))]
fn liveness() -> impl Reply {
    warp::reply::json(&Health {
        status: "ok".into(),
        schema_version: None,
        expected: None,
        error: None,
    })
}

/// The node can serve
///
/// The database is reachable, its schema is up to date and the node is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready, and why", body = Health),
    ))]
async fn readiness(state: Arc<AppState>) -> impl Reply {
    let health = |status: &str| Health {
        status: status.to_owned(),
        schema_version: None,
        expected: None,
        error: None,
    };
    if *state.stopping.borrow() {
        // Load balancers stop sending here while the node hands its sessions over.
        return warp::reply::with_status(
            warp::reply::json(&health("shutting_down")),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    let expected = migrate::latest_version();
    let (status, body) = match migrate::applied_version(&state.pool).await {
        Ok(Some(applied)) if applied >= expected => (
            StatusCode::OK,
            Health {
                schema_version: Some(applied),
                ..health("ready")
            },
        ),
        Ok(applied) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                schema_version: applied,
                expected: Some(expected),
                ..health("migrations_pending")
            },
        ),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                error: Some(error.to_string()),
                ..health("database_unavailable")
            },
        ),
    };
    warp::reply::with_status(warp::reply::json(&body), status)
}
