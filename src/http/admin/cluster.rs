//! `/api/admin/cluster`: the nodes of the installation (name, addresses, incarnation, up
//! since, last heartbeat, sessions held), and draining one: it hands its sessions to the
//! others and takes none until undrained (`POST`/`DELETE .../nodes/{name}/drain`).

use std::sync::Arc;

use botwave_actors::cluster::nodes::{self, NodeInfo};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::{
    admin::audit,
    http::{
        error::{ApiError, ErrorBody, respond},
        filters::{Caller, with_state},
        routing::Route,
    },
    state::AppState,
};

#[derive(Serialize, ToSchema)]
struct ClusterView {
    /// The node that answered.
    node: String,
    incarnation: Uuid,
    nodes: Vec<NodeInfo>,
}

#[derive(Serialize, ToSchema)]
struct DrainState {
    node: String,
    draining: bool,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_list>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|state, _caller| async move { respond(list(state).await) })
                .boxed()
        }),
        Route::with::<__path_drain, String>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|name, state, caller| async move {
                    respond(set_draining(state, caller, name, true).await)
                })
                .boxed()
        }),
        Route::with::<__path_undrain, String>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|name, state, caller| async move {
                    respond(set_draining(state, caller, name, false).await)
                })
                .boxed()
        }),
    ]
}

/// The cluster's nodes
#[utoipa::path(get, path = "/api/admin/cluster", tag = "admin", operation_id = "admin_cluster",
    security(("bearer" = [])),
    responses((status = 200, description = "Every node seen in the last day", body = ClusterView)))]
async fn list(state: Arc<AppState>) -> Result<Response, ApiError> {
    let listed = nodes::list(&state.pool, state.lease_ttl)
        .await
        .map_err(session_error)?;
    let node = state.sessions.node();
    Ok(json_reply(
        &ClusterView {
            node: node.name.clone(),
            incarnation: node.incarnation,
            nodes: listed,
        },
        StatusCode::OK,
    ))
}

/// Drain a node
///
/// It hands its sessions to the other nodes and takes none until undrained.
#[utoipa::path(post, path = "/api/admin/cluster/nodes/{name}/drain", tag = "admin", operation_id = "admin_drain_node",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The node's name")),
    responses(
        (status = 200, description = "Done", body = DrainState),
        (status = 404, description = "No such node", body = ErrorBody),
    ))]
#[allow(dead_code)] // Documents a route whose handler is `set_draining`.
fn drain() {}

/// Undrain a node
///
/// It takes sessions again.
#[utoipa::path(delete, path = "/api/admin/cluster/nodes/{name}/drain", tag = "admin", operation_id = "admin_undrain_node",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The node's name")),
    responses(
        (status = 200, description = "Done", body = DrainState),
        (status = 404, description = "No such node", body = ErrorBody),
    ))]
#[allow(dead_code)] // Documents a route whose handler is `set_draining`.
fn undrain() {}

async fn set_draining(
    state: Arc<AppState>,
    caller: Caller,
    name: String,
    draining: bool,
) -> Result<Response, ApiError> {
    let told = nodes::set_draining(&state.pool, &name, draining)
        .await
        .map_err(session_error)?;
    if told == 0 {
        return Err(ApiError::NotFound("node"));
    }
    let conn = state.pool.get().await.map_err(crate::db::DbError::from)?;
    let action = if draining {
        "cluster.drain"
    } else {
        "cluster.undrain"
    };
    audit::record(&**conn, &caller.user, action, None, json!({ "node": name })).await?;
    Ok(json_reply(
        &DrainState {
            node: name,
            draining,
        },
        StatusCode::OK,
    ))
}
