//! `/api/admin/*`: what the people running an installation use — accounts, sessions,
//! analytics, the audit log and the cluster's nodes. Every route needs a login token (not an API key) of an
//! account whose role, read from the database on this request, is `admin`.

mod analytics;
mod audit;
mod cluster;
mod pacing;
mod plans;
mod sessions;
mod users;

use std::sync::Arc;

use warp::{Filter, Rejection, Reply, reply::Response};

use super::{
    error::ApiError,
    filters::{Caller, session_caller},
    routing::Route,
};
use crate::{admin::AdminError, domain::Role, state::AppState};

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let mut routes = users::routes(state);
    routes.extend(sessions::routes(state));
    routes.extend(analytics::routes(state));
    routes.extend(audit::routes(state));
    routes.extend(cluster::routes(state));
    routes.extend(plans::routes(state));
    routes.extend(pacing::routes(state));
    routes
}

/// Every admin operation, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    users::list,
    users::create,
    users::disable,
    users::enable,
    users::set_role,
    users::reset_password,
    users::delete,
    pacing::get_pacing,
    pacing::set_pacing,
    pacing::reset_pacing,
    sessions::list,
    sessions::stop_session,
    sessions::restart_session,
    sessions::disconnect_session,
    analytics::analytics,
    analytics::analytics_csv,
    audit::list,
    cluster::list,
    cluster::drain,
    cluster::undrain,
    plans::list,
    plans::create,
    plans::update,
    plans::assign,
))]
pub struct AdminApi;

/// The caller, if logged in with a token as an enabled admin. `Caller.user` was loaded from
/// the database for this request, so a demoted admin's older token no longer passes.
fn admin(state: Arc<AppState>) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    session_caller(state).and_then(|caller: Caller| async move {
        if caller.user.role == Role::Admin {
            Ok(caller)
        } else {
            Err(warp::reject::custom(ApiError::Forbidden(
                "this endpoint is for administrators",
            )))
        }
    })
}

/// A JSON answer with the given status.
fn json_reply(value: &impl serde::Serialize, status: warp::http::StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound(what) => ApiError::NotFound(what),
            AdminError::LastAdmin => ApiError::Conflict("last_admin", error.to_string()),
            AdminError::EmailTaken => ApiError::EmailTaken,
            AdminError::Report(detail) => ApiError::Internal(detail),
            AdminError::Db(error) => error.into(),
        }
    }
}

fn session_error(error: botwave_actors::SessionError) -> ApiError {
    error.into()
}
