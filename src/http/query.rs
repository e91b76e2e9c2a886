//! Reading query strings: the filter that takes them in (refusing NUL characters, like JSON
//! bodies do), and numbers, dates and times checked against the ranges botwave and
//! PostgreSQL handle, with errors that name the parameter at fault.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use warp::{Filter, Rejection};

use crate::http::error::ApiError;

/// The earliest and latest dates a query may name: wide enough for any real question, and far
/// inside what PostgreSQL and date arithmetic (a report's default start) can take.
const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
const LATEST: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date");

/// The query string as name → value.
pub fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    warp::query::<HashMap<String, String>>().and_then(|query: HashMap<String, String>| async move {
        match query
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            Some((name, _)) => Err(warp::reject::custom(ApiError::validation(
                name.replace('\0', ""),
                "query parameters must not contain NUL characters",
            ))),
            None => Ok(query),
        }
    })
}

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
        .ok()
        .filter(|date| (EARLIEST..=LATEST).contains(date))
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation(
                name,
                format!("{name} must be a date as YYYY-MM-DD, from {EARLIEST} to {LATEST}"),
            )
        })
}

/// A date (`2026-01-31`, meaning its start in UTC) or an RFC 3339 time, if given.
pub fn time(
    query: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = query.get(name).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|at| at.and_utc())
        })
        .filter(|at| (EARLIEST..=LATEST).contains(&at.date_naive()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::validation(
                name,
                format!(
                    "{name} must be a date (2026-01-31) or an RFC 3339 time, from {EARLIEST} to {LATEST}"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> HashMap<String, String> {
        HashMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn dates_and_times_outside_the_range_are_refused() {
        for bad in [
            "-262143-01-01",
            "-4714-01-01",
            "0001-01-01",
            "1969-12-31",
            "+10000-01-01",
        ] {
            assert!(date(&one("d", bad), "d").is_err(), "{bad}");
            assert!(time(&one("d", bad), "d").is_err(), "{bad}");
        }
        assert!(time(&one("d", "0001-01-01T00:00:00Z"), "d").is_err());
        assert_eq!(
            date(&one("d", "2026-02-03"), "d").unwrap(),
            NaiveDate::from_ymd_opt(2026, 2, 3)
        );
        assert!(
            time(&one("d", "2026-02-03T04:05:06+01:00"), "d")
                .unwrap()
                .is_some()
        );
        assert!(time(&HashMap::new(), "d").unwrap().is_none());
    }
}
