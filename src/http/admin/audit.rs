//! `GET /api/admin/audit?limit=&cursor=`: what admins did, newest first. `next_cursor` (when
//! there may be more) goes into `cursor` for the next page.

use std::{collections::HashMap, sync::Arc};

use serde_json::json;
use warp::{Filter, filters::BoxedFilter, http::StatusCode, reply::Response};

use super::{admin, json_reply};
use crate::http::query;
use crate::{
    admin::audit::{self, DEFAULT_LIMIT, MAX_LIMIT},
    http::{
        error::{ApiError, respond},
        filters::with_state,
    },
    state::AppState,
};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "admin" / "audit")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state))
        .and(crate::http::query::query())
        .then(|state, _caller, query| async move { respond(list(state, query).await) })
        .boxed()
}

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
        &json!({ "entries": entries, "next_cursor": next_cursor }),
        StatusCode::OK,
    ))
}
