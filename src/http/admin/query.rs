//! Reading the admin routes' query strings: numbers and dates with errors that name the
//! parameter at fault.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::http::error::ApiError;

/// A whole number from `1` to `max`, or `default` when absent.
pub fn bounded(
    query: &HashMap<String, String>,
    name: &'static str,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let Some(text) = query.get(name).filter(|text| !text.is_empty()) else {
        return Ok(default);
    };
    match text.parse::<i64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(ApiError::validation(
            name,
            format!("{name} must be a whole number from 1 to {max}"),
        )),
    }
}

/// A `YYYY-MM-DD` date, if given.
pub fn date(
    query: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<NaiveDate>, ApiError> {
    let Some(text) = query.get(name).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ApiError::validation(name, format!("{name} must be a date as YYYY-MM-DD")))
}
