//! Pacing in PostgreSQL: an admin's per-user settings (`user_pacing`), and what a session
//! needs to rebuild its [`Pacer`] when it starts (its settings, when its number was linked,
//! and its recent sends).

use chrono::{DateTime, NaiveTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::pacer::Pacer;
use super::policy::{PacingSettings, QuietHoursSettings};
use crate::PgPool;
use crate::error::SessionError;

/// An account's own settings, if an admin set them, and when.
#[derive(Clone, Debug)]
pub struct StoredPacing {
    pub settings: PacingSettings,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "enabled, min_gap_ms, jitter_ms, per_minute, per_hour, per_day, \
     quiet_start, quiet_end, time_zone, warmup_daily_caps, updated_at";

fn from_row(row: &Row) -> StoredPacing {
    let quiet_start: Option<NaiveTime> = row.get("quiet_start");
    let quiet_end: Option<NaiveTime> = row.get("quiet_end");
    let warmup: Vec<i32> = row.get("warmup_daily_caps");
    let int = |column: &str| i64::from(row.get::<_, i32>(column));
    StoredPacing {
        settings: PacingSettings {
            enabled: row.get("enabled"),
            min_gap_ms: int("min_gap_ms"),
            jitter_ms: int("jitter_ms"),
            per_minute: int("per_minute"),
            per_hour: int("per_hour"),
            per_day: int("per_day"),
            quiet_hours: quiet_start
                .zip(quiet_end)
                .map(|(start, end)| QuietHoursSettings {
                    start: start.format("%H:%M").to_string(),
                    end: end.format("%H:%M").to_string(),
                }),
            time_zone: row.get("time_zone"),
            warmup_daily_caps: warmup.into_iter().map(i64::from).collect(),
        },
        updated_at: row.get("updated_at"),
    }
}

/// `user_id`'s own settings, or `None`: the node's defaults apply.
pub async fn get(
    client: &impl tokio_postgres::GenericClient,
    user_id: Uuid,
) -> Result<Option<StoredPacing>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM user_pacing WHERE user_id = $1");
    let rows = client
        .query_typed(sql.as_str(), &[(&user_id, Type::UUID)])
        .await?;
    Ok(rows.first().map(from_row))
}

/// Stores `settings` (already checked) as `user_id`'s own, replacing earlier ones.
pub async fn put(
    client: &impl tokio_postgres::GenericClient,
    user_id: Uuid,
    settings: &PacingSettings,
) -> Result<StoredPacing, tokio_postgres::Error> {
    let time = |text: &str| {
        NaiveTime::parse_from_str(text, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
            .ok()
    };
    let quiet_start = settings.quiet_hours.as_ref().and_then(|q| time(&q.start));
    let quiet_end = settings.quiet_hours.as_ref().and_then(|q| time(&q.end));
    // Checked settings fit: every number is at most an hour in milliseconds or a million.
    let int = |value: i64| i32::try_from(value).unwrap_or(i32::MAX);
    let warmup: Vec<i32> = settings.warmup_daily_caps.iter().map(|&c| int(c)).collect();
    let sql = format!(
        "INSERT INTO user_pacing (user_id, enabled, min_gap_ms, jitter_ms, per_minute, per_hour,
             per_day, quiet_start, quiet_end, time_zone, warmup_daily_caps, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp())
         ON CONFLICT (user_id) DO UPDATE SET enabled = EXCLUDED.enabled,
             min_gap_ms = EXCLUDED.min_gap_ms, jitter_ms = EXCLUDED.jitter_ms,
             per_minute = EXCLUDED.per_minute, per_hour = EXCLUDED.per_hour,
             per_day = EXCLUDED.per_day, quiet_start = EXCLUDED.quiet_start,
             quiet_end = EXCLUDED.quiet_end, time_zone = EXCLUDED.time_zone,
             warmup_daily_caps = EXCLUDED.warmup_daily_caps, updated_at = clock_timestamp()
         RETURNING {COLUMNS}"
    );
    let row = client
        .query_typed(
            sql.as_str(),
            &[
                (&user_id, Type::UUID),
                (&settings.enabled, Type::BOOL),
                (&int(settings.min_gap_ms), Type::INT4),
                (&int(settings.jitter_ms), Type::INT4),
                (&int(settings.per_minute), Type::INT4),
                (&int(settings.per_hour), Type::INT4),
                (&int(settings.per_day), Type::INT4),
                (&quiet_start, Type::TIME),
                (&quiet_end, Type::TIME),
                (&settings.time_zone, Type::TEXT),
                (&warmup, Type::INT4_ARRAY),
            ],
        )
        .await?;
    Ok(from_row(&row[0]))
}

/// Drops `user_id`'s own settings: the node's defaults apply again. Whether there were any.
pub async fn clear(
    client: &impl tokio_postgres::GenericClient,
    user_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let deleted = client
        .execute_typed(
            "DELETE FROM user_pacing WHERE user_id = $1",
            &[(&user_id, Type::UUID)],
        )
        .await?;
    Ok(deleted > 0)
}

/// A session's pacer as of now: its settings (or `defaults`), when its number was linked,
/// and its sends of the last day, newest kept. Also the settings' `updated_at`, which the
/// outbox claim reports, so the sender notices a change.
pub async fn load_pacer(
    pool: &PgPool,
    user_id: Uuid,
    defaults: &PacingSettings,
) -> Result<(Pacer, Option<DateTime<Utc>>), SessionError> {
    let conn = pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS}, (SELECT linked_at FROM wa_sessions WHERE user_id = $1) AS linked_at
         FROM user_pacing WHERE user_id = $1"
    );
    let rows = conn
        .query_typed(sql.as_str(), &[(&user_id, Type::UUID)])
        .await?;
    let (settings, updated_at, linked_at) = match rows.first() {
        Some(row) => {
            let stored = from_row(row);
            let linked: Option<DateTime<Utc>> = row.get("linked_at");
            (stored.settings, Some(stored.updated_at), linked)
        }
        None => {
            let linked = conn
                .query_typed(
                    "SELECT linked_at FROM wa_sessions WHERE user_id = $1",
                    &[(&user_id, Type::UUID)],
                )
                .await?
                .first()
                .and_then(|row| row.get::<_, Option<DateTime<Utc>>>(0));
            (defaults.clone(), None, linked)
        }
    };
    let policy = match settings.check() {
        Ok(policy) => policy,
        Err(error) => {
            // Stored settings were checked when written; a zone this build does not know
            // (an older tzdb) falls back to the node's defaults rather than to no pacing.
            tracing::warn!(%user_id, %error, "stored pacing settings unusable; using the defaults");
            defaults
                .check()
                .unwrap_or_else(|_| super::PacingPolicy::off())
        }
    };
    let mut pacer = Pacer::new(policy, linked_at, Vec::new());
    let keep = pacer.history_needed();
    if keep > 0 {
        let limit = keep as i64;
        let history: Vec<DateTime<Utc>> = conn
            .query_typed(
                "SELECT sent_at FROM messages
                 WHERE user_id = $1 AND created_at > now() - interval '30 days'
                   AND sent_at > now() - interval '26 hours'
                 ORDER BY sent_at DESC LIMIT $2",
                &[(&user_id, Type::UUID), (&limit, Type::INT8)],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        pacer = Pacer::new(pacer.policy().clone(), linked_at, history);
    }
    Ok((pacer, updated_at))
}
