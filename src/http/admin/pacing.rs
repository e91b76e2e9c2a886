//! `/api/admin/users/{id}/pacing`: an account's per-number pacing (anti-ban). An account
//! without settings of its own paces by the node's `[pacing]` config; an admin can give it
//! its own (or switch pacing off for it, e.g. for benchmarks) and reset it to the defaults.
//! A change reaches the account's running session at its next send, and wakes it so that
//! held messages are planned again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::{Filter, http::StatusCode, reply::Response};

use botwave_actors::pacing::{PacingSettings, QuietHoursSettings, store::StoredPacing};

use super::{admin, json_reply};
use crate::{
    admin::pacing as queries,
    http::{
        error::{ApiError, ErrorBody},
        filters::{Caller, json_body, with_state},
        routing::Route,
    },
    state::AppState,
};

/// New pacing settings for an account; a field left out takes the node's default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PacingUpdate {
    /// `false` switches pacing off (WhatsApp's own rate-overlimit answers still slow it).
    enabled: Option<bool>,
    /// Least milliseconds between two messages (0 to 3600000).
    min_gap_ms: Option<i64>,
    /// Up to this many milliseconds more on each gap, at random (0 to 3600000).
    jitter_ms: Option<i64>,
    /// Messages per minute, hour and local day at most; 0: no cap.
    per_minute: Option<i64>,
    per_hour: Option<i64>,
    per_day: Option<i64>,
    /// `{"start": "22:00", "end": "07:00"}` in the account's time zone; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<QuietHoursSettings>)]
    quiet_hours: Option<Option<QuietHoursSettings>>,
    /// IANA zone, e.g. `Europe/Berlin`.
    time_zone: Option<String>,
    /// Daily caps for the first days after linking (the first is the day of linking).
    warmup_daily_caps: Option<Vec<i64>>,
}

/// A field that is present (even as `null`), told apart from one left out.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl PacingUpdate {
    fn over(self, defaults: &PacingSettings) -> PacingSettings {
        let defaults = defaults.clone();
        PacingSettings {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            min_gap_ms: self.min_gap_ms.unwrap_or(defaults.min_gap_ms),
            jitter_ms: self.jitter_ms.unwrap_or(defaults.jitter_ms),
            per_minute: self.per_minute.unwrap_or(defaults.per_minute),
            per_hour: self.per_hour.unwrap_or(defaults.per_hour),
            per_day: self.per_day.unwrap_or(defaults.per_day),
            quiet_hours: self.quiet_hours.unwrap_or(defaults.quiet_hours),
            time_zone: self.time_zone.unwrap_or(defaults.time_zone),
            warmup_daily_caps: self.warmup_daily_caps.unwrap_or(defaults.warmup_daily_caps),
        }
    }
}

/// The pacing an account's number sends under.
#[derive(Serialize, ToSchema)]
struct UserPacing {
    user_id: Uuid,
    /// The settings in force.
    pacing: PacingSettings,
    /// Set by an admin for this account; `false`: the node's defaults.
    custom: bool,
    /// When an admin last set them.
    updated_at: Option<DateTime<Utc>>,
}

impl UserPacing {
    fn new(user_id: Uuid, stored: Option<StoredPacing>, defaults: &PacingSettings) -> Self {
        match stored {
            Some(stored) => Self {
                user_id,
                pacing: stored.settings,
                custom: true,
                updated_at: Some(stored.updated_at),
            },
            None => Self {
                user_id,
                pacing: defaults.clone(),
                custom: false,
                updated_at: None,
            },
        }
    }
}

pub fn routes(state: &Arc<AppState>) -> Vec<Route> {
    let body = state.body_limits;
    vec![
        Route::with::<__path_get_pacing, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|id, state, _caller| async move {
                    crate::http::error::respond(get_pacing(state, id).await)
                })
                .boxed()
        }),
        Route::with::<__path_set_pacing, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .and(json_body(body))
                .then(|id, state, caller, body| async move {
                    crate::http::error::respond(set_pacing(state, caller, id, body).await)
                })
                .boxed()
        }),
        Route::with::<__path_reset_pacing, Uuid>(|at| {
            at.and(with_state(state.clone()))
                .and(admin(state.clone()))
                .then(|id, state, caller| async move {
                    crate::http::error::respond(reset_pacing(state, caller, id).await)
                })
                .boxed()
        }),
    ]
}

/// An account's pacing
///
/// The settings its number sends under: its own, or the node's defaults.
#[utoipa::path(get, path = "/api/admin/users/{id}/pacing", tag = "admin", operation_id = "admin_get_pacing",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The pacing in force", body = UserPacing),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
async fn get_pacing(state: Arc<AppState>, id: Uuid) -> Result<Response, ApiError> {
    let stored = queries::get(&state.pool, id).await?;
    Ok(json_reply(
        &UserPacing::new(id, stored, &state.pacing_defaults),
        StatusCode::OK,
    ))
}

/// Set an account's pacing
///
/// Replaces its settings as a whole: fields left out take the node's defaults. Held
/// messages are planned again at once.
#[utoipa::path(put, path = "/api/admin/users/{id}/pacing", tag = "admin", operation_id = "admin_set_pacing",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    request_body = PacingUpdate,
    responses(
        (status = 200, description = "Stored", body = UserPacing),
        (status = 400, description = "`validation_failed`, with the `field`", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
async fn set_pacing(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
    body: PacingUpdate,
) -> Result<Response, ApiError> {
    let settings = body.over(&state.pacing_defaults);
    settings
        .check()
        .map_err(|error| ApiError::validation(error.field, error.message))?;
    let stored = queries::set(&state.pool, &caller.user, id, &settings).await?;
    tracing::info!(admin = %caller.user.id, user = %id, "pacing set by an admin");
    state.sessions.notify_queued(id);
    Ok(json_reply(
        &UserPacing::new(id, Some(stored), &state.pacing_defaults),
        StatusCode::OK,
    ))
}

/// Reset an account's pacing
///
/// Back to the node's defaults.
#[utoipa::path(delete, path = "/api/admin/users/{id}/pacing", tag = "admin", operation_id = "admin_reset_pacing",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The node's defaults apply", body = UserPacing),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
async fn reset_pacing(
    state: Arc<AppState>,
    caller: Caller,
    id: Uuid,
) -> Result<Response, ApiError> {
    queries::reset(&state.pool, &caller.user, id).await?;
    state.sessions.notify_queued(id);
    Ok(json_reply(
        &UserPacing::new(id, None, &state.pacing_defaults),
        StatusCode::OK,
    ))
}
