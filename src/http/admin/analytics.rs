//! `GET /api/admin/analytics?from=YYYY-MM-DD&until=YYYY-MM-DD[&format=csv]` and
//! `GET /api/admin/analytics.csv`: usage over a range of UTC days (default: the last 30,
//! today included). What each figure means is documented in `crate::admin::analytics`.

use std::{collections::HashMap, sync::Arc};

use chrono::{Duration, NaiveDate, Utc};
use warp::{Filter, Reply, http::StatusCode, reply::Response};

use super::{admin, json_reply};
use crate::{
    admin::analytics::{self, DEFAULT_DAYS, MAX_DAYS, Report},
    http::{
        error::{ApiError, respond},
        filters::with_state,
        query,
        routing::Route,
    },
    state::AppState,
};

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    vec![
        Route::new::<__path_analytics>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(query::query())
                .then(|state, _caller, query| analytics(state, query))
                .boxed()
        }),
        Route::new::<__path_analytics_csv>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(query::query())
                .then(|state, _caller, query| analytics_csv(state, query))
                .boxed()
        }),
    ]
}

/// Usage analytics
///
/// Messages, delivery rates and active sessions over a range of UTC days; `format=csv` answers
/// the per-day rows as CSV.
#[utoipa::path(get, path = "/api/admin/analytics", tag = "admin", operation_id = "admin_analytics",
    security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, format = Date, description = "First UTC day, YYYY-MM-DD (30 days before `until` by default)"),
        ("until" = Option<String>, Query, format = Date, description = "Last UTC day, YYYY-MM-DD (today by default); at most 366 days after `from`"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
    ),
    responses((status = 200, description = "The report", content(
        (Report = "application/json"),
        (String = "text/csv; charset=utf-8"),
    ))))]
async fn analytics(state: Arc<AppState>, query: HashMap<String, String>) -> Response {
    let format = match query.get("format").map(String::as_str) {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(_) => {
            return ApiError::validation("format", "format must be json or csv").into_response();
        }
    };
    respond(report(state, query, format).await)
}

/// Usage analytics as CSV
#[utoipa::path(get, path = "/api/admin/analytics.csv", tag = "admin", operation_id = "admin_analytics_csv",
    security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, format = Date, description = "First UTC day, YYYY-MM-DD (30 days before `until` by default)"),
        ("until" = Option<String>, Query, format = Date, description = "Last UTC day, YYYY-MM-DD (today by default); at most 366 days after `from`"),
    ),
    responses((status = 200, description = "The per-day rows", content_type = "text/csv; charset=utf-8", body = String)))]
async fn analytics_csv(state: Arc<AppState>, query: HashMap<String, String>) -> Response {
    respond(report(state, query, Format::Csv).await)
}

/// The validated range: both ends given or defaulted, in order, at most `MAX_DAYS` long.
fn range(query: &HashMap<String, String>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let until = query::date(query, "until")?.unwrap_or_else(|| Utc::now().date_naive());
    let from =
        query::date(query, "from")?.unwrap_or_else(|| until - Duration::days(DEFAULT_DAYS - 1));
    if from > until {
        return Err(ApiError::validation("from", "from must not be after until"));
    }
    if (until - from).num_days() + 1 > MAX_DAYS {
        return Err(ApiError::validation(
            "until",
            format!("a report covers at most {MAX_DAYS} days"),
        ));
    }
    Ok((from, until))
}

async fn report(
    state: Arc<AppState>,
    query: HashMap<String, String>,
    format: Format,
) -> Result<Response, ApiError> {
    let (from, until) = range(&query)?;
    let report = analytics::report(&state.pool, from, until).await?;
    Ok(match format {
        Format::Json => json_reply(&report, StatusCode::OK),
        Format::Csv => {
            let disposition = format!("attachment; filename=\"botwave-{from}-{until}.csv\"");
            let reply = warp::reply::with_header(
                analytics::per_day_csv(&report),
                "content-type",
                "text/csv; charset=utf-8",
            );
            warp::reply::with_header(reply, "content-disposition", disposition).into_response()
        }
    })
}
