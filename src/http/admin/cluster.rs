//! `/api/admin/cluster`: the nodes of the installation (name, addresses, incarnation, up
//! since, last heartbeat, sessions held), and draining one: it hands its sessions to the
//! others and takes none until undrained (`POST`/`DELETE .../nodes/{name}/drain`).

use std::sync::Arc;

use botwave_actors::cluster::nodes;
use serde_json::json;
use warp::{Filter, filters::BoxedFilter, http::StatusCode, reply::Response};

use super::{admin, json_reply, session_error};
use crate::{
    admin::audit,
    http::{
        error::{ApiError, respond},
        filters::{Caller, with_state},
    },
    state::AppState,
};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "admin" / "cluster")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .then(|state, _caller| async move { respond(list(state).await) });
    let drain = warp::path!("api" / "admin" / "cluster" / "nodes" / String / "drain")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .then(|name, state, caller| async move {
            respond(set_draining(state, caller, name, true).await)
        });
    let undrain = warp::path!("api" / "admin" / "cluster" / "nodes" / String / "drain")
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(admin(state))
        .then(|name, state, caller| async move {
            respond(set_draining(state, caller, name, false).await)
        });
    list.or(drain).unify().or(undrain).unify().boxed()
}

async fn list(state: Arc<AppState>) -> Result<Response, ApiError> {
    let listed = nodes::list(&state.pool, state.lease_ttl)
        .await
        .map_err(session_error)?;
    let node = state.sessions.node();
    Ok(json_reply(
        &json!({
            "node": node.name,
            "incarnation": node.incarnation,
            "nodes": listed,
        }),
        StatusCode::OK,
    ))
}

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
    audit::record(&*conn, &caller.user, action, None, json!({ "node": name })).await?;
    Ok(json_reply(
        &json!({ "node": name, "draining": draining }),
        StatusCode::OK,
    ))
}
