//! The node's HTTP front end (warp): JSON API routes, assembled here from one route table
//! ([`routing`]) that the OpenAPI document ([`openapi`]) describes, and answered in one error
//! format.

mod account;
mod admin;
mod billing;
mod dashboard;
pub mod error;
mod filters;
mod health;
mod keys;
pub mod live;
mod messages;
mod metrics;
pub mod openapi;
pub mod password_reset;
mod query;
mod rate_headers;
pub mod routing;
pub mod server;
pub mod socket_io;
mod usage;
mod webhooks;
mod whatsapp;
pub mod ws;

use std::{convert::Infallible, sync::Arc};

use warp::{Filter, Reply};

use crate::state::AppState;

pub use error::ApiError;
pub use filters::BodyLimits;
pub use live::WsLimits;
pub use routing::Route;

/// The route table: every operation the node serves, in the order they are tried.
pub fn table(state: &Arc<AppState>) -> Vec<Route> {
    [
        health::routes(state),
        metrics::routes(state),
        openapi::routes(state),
        account::routes(state),
        password_reset::routes(state),
        keys::routes(state),
        whatsapp::routes(state),
        messages::routes(state),
        webhooks::routes(state),
        usage::routes(state),
        billing::routes(state),
        admin::routes(state),
        ws::routes(state),
        dashboard::routes(state),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What the listener serves: the node's routes with rate-limit headers, and Socket.IO in front
/// of them.
pub fn service(state: Arc<AppState>) -> impl server::Routes {
    let routes = rate_headers::WithRateHeaders(warp::service(routes(state.clone())));
    socket_io::service(routes, state)
}

/// Every route of the node, answered in one error format.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let observed = state.clone();
    routing::assemble(table(&state))
        .recover(error::handle_rejection)
        .with(warp::trace::request())
        .with(warp::log::custom(move |info: warp::log::Info<'_>| {
            observed.http_metrics.observe(
                info.method().as_str(),
                info.path(),
                info.status().as_u16(),
                info.elapsed(),
            )
        }))
}
