//! The node's HTTP front end (warp): JSON API routes, composed here and answered in one error
//! format.

mod account;
mod admin;
mod dashboard;
pub mod error;
mod filters;
mod health;
mod keys;
mod messages;
mod metrics;
pub mod password_reset;
mod query;
pub mod server;
mod webhooks;
mod whatsapp;
pub mod ws;

use std::{convert::Infallible, sync::Arc};

use warp::{Filter, Reply};

use crate::state::AppState;

pub use error::ApiError;
pub use filters::BodyLimits;
pub use ws::WsLimits;

/// Every route of the node.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let observed = state.clone();
    health::routes(state.clone())
        .or(metrics::routes(state.clone()))
        .or(account::routes(state.clone()))
        .or(password_reset::routes(state.clone()))
        .or(keys::routes(state.clone()))
        .or(whatsapp::routes(state.clone()))
        .or(messages::routes(state.clone()))
        .or(webhooks::routes(state.clone()))
        .or(admin::routes(state.clone()))
        .or(ws::routes(state.clone()))
        .or(dashboard::routes(state))
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
