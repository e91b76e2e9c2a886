//! `GET /api/admin/analytics?from=YYYY-MM-DD&until=YYYY-MM-DD[&format=csv]` and
//! `GET /api/admin/analytics.csv`: usage over a range of UTC days (default: the last 30,
//! today included). What each figure means is documented in `crate::admin::analytics`.

use std::{collections::HashMap, sync::Arc};

use chrono::{Duration, NaiveDate, Utc};
use warp::{Filter, Reply, filters::BoxedFilter, http::StatusCode, reply::Response};

use super::{admin, json_reply};
use crate::http::query;
use crate::{
    admin::analytics::{self, DEFAULT_DAYS, MAX_DAYS},
    http::{
        error::{ApiError, respond},
        filters::with_state,
    },
    state::AppState,
};

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
}

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let json = warp::path!("api" / "admin" / "analytics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state.clone()))
        .and(crate::http::query::query())
        .then(
            |state, _caller, query: HashMap<String, String>| async move {
                let format = match query.get("format").map(String::as_str) {
                    None | Some("json") => Ok(Format::Json),
                    Some("csv") => Ok(Format::Csv),
                    Some(_) => Err(ApiError::validation("format", "format must be json or csv")),
                };
                match format {
                    Ok(format) => respond(report(state, query, format).await),
                    Err(error) => error.into_response(),
                }
            },
        );
    let csv = warp::path!("api" / "admin" / "analytics.csv")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(admin(state))
        .and(crate::http::query::query())
        .then(
            |state, _caller, query| async move { respond(report(state, query, Format::Csv).await) },
        );
    json.or(csv).unify().boxed()
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
