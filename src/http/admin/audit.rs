//! `GET /api/admin/audit?limit=&cursor=`: what admins did, newest first. `next_cursor` (when
//! there may be more) goes into `cursor` for the next page.

use std::{collections::HashMap, sync::Arc};

use serde::Serialize;
use utoipa::ToSchema;
use warp::{Filter, http::StatusCode, reply::Response};

use super::{admin, json_reply};
use crate::{
    admin::audit::{self, DEFAULT_LIMIT, Entry, MAX_LIMIT},
    http::{
        error::{ApiError, respond},
        filters::with_state,
        query,
        routing::Route,
    },
    state::AppState,
};

#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<Entry>,
    /// For `cursor`, when there may be more.
    next_cursor: Option<String>,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![Route::new::<__path_list>(|at| {
        at.and(with_state(state.clone()))
            .and(admin(state.clone()))
            .and(query::query())
            .then(|state, _caller, query| async move { respond(list(state, query).await) })
            .boxed()
    })]
}

/// The audit log
///
/// What admins did, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", operation_id = "admin_audit_log",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Entries per page"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "One page", body = AuditPage)))]
async fn list(state: Arc<AppState>, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let limit = query::bounded(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let cursor = match query.get("cursor").filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| ApiError::validation("cursor", "cursor is not one this API gave"))?,
        ),
    };
    let entries = audit::list(&state.pool, limit, cursor).await?;
    let next_cursor = match entries.last() {
        Some(last) if entries.len() as i64 == limit => Some(last.id.to_string()),
        _ => None,
    };
    Ok(json_reply(
        &AuditPage {
            entries,
            next_cursor,
        },
        StatusCode::OK,
    ))
}
