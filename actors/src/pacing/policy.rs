//! What pacing a number sends under: the settings as admins and the config file write them
//! ([`PacingSettings`], checked by [`PacingSettings::check`]) and the checked form the pacer
//! plans with ([`PacingPolicy`]).

use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Longest gap or jitter accepted: an hour.
pub const MAX_GAP_MS: i64 = 3_600_000;
/// Highest cap accepted (a cap of 0 means none).
pub const MAX_CAP: i64 = 1_000_000;
/// Days of a warm-up schedule at most.
pub const MAX_WARMUP_DAYS: usize = 90;

/// Quiet hours, as `HH:MM` local times; a start after the end spans midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursSettings {
    /// e.g. `22:00`
    pub start: String,
    /// e.g. `07:00`
    pub end: String,
}

/// Pacing of one number, as written: in the config file (`[pacing]`), and in the admin API
/// (`/api/admin/users/{id}/pacing`). Numbers are signed so that a negative one gets a clear
/// error naming its field instead of a parse failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PacingSettings {
    /// Off: messages go out as fast as the pipeline sends them (WhatsApp's own
    /// rate-overlimit answers are still obeyed).
    pub enabled: bool,
    /// Least time between two messages of the number, in milliseconds.
    pub min_gap_ms: i64,
    /// Up to this many milliseconds more, at random, on each gap.
    pub jitter_ms: i64,
    /// Messages per minute, hour and (local) day at most; 0 means no cap.
    pub per_minute: i64,
    pub per_hour: i64,
    pub per_day: i64,
    /// No messages go out between these local times; `null`: none.
    pub quiet_hours: Option<QuietHoursSettings>,
    /// The account's IANA time zone (e.g. `Europe/Berlin`): days and quiet hours are its.
    pub time_zone: String,
    /// Daily caps for the first days after the number was linked (the first is the day of
    /// linking); the lower of it and `per_day` applies. Empty: no warm-up.
    pub warmup_daily_caps: Vec<i64>,
}

impl Default for PacingSettings {
    /// Conservative: a human-looking pace for a number that is not known to WhatsApp as a
    /// bulk sender, with a two-week warm-up after linking.
    fn default() -> Self {
        Self {
            enabled: true,
            min_gap_ms: 4_000,
            jitter_ms: 3_000,
            per_minute: 10,
            per_hour: 200,
            per_day: 1_000,
            quiet_hours: None,
            time_zone: "UTC".to_owned(),
            warmup_daily_caps: vec![
                50, 50, 100, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900,
            ],
        }
    }
}

/// A setting that cannot be used, naming it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PacingSettingsError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> PacingSettingsError {
    PacingSettingsError {
        field,
        message: message.into(),
    }
}

/// An IANA zone by name, e.g. `Europe/Berlin` or `UTC`.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// `HH:MM` (or `HH:MM:SS`), 00:00 to 23:59.
fn parse_local_time(text: &str) -> Option<NaiveTime> {
    let well_formed = text.len() <= 8
        && text.bytes().all(|b| b.is_ascii_digit() || b == b':')
        && text.split(':').all(|part| part.len() == 2);
    if !well_formed {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
}

impl PacingSettings {
    /// The policy these settings describe, or what is wrong with them.
    pub fn check(&self) -> Result<PacingPolicy, PacingSettingsError> {
        let millis = |field, value: i64| {
            if (0..=MAX_GAP_MS).contains(&value) {
                Ok(Duration::from_millis(value as u64))
            } else {
                Err(invalid(
                    field,
                    format!("must be 0 to {MAX_GAP_MS} milliseconds"),
                ))
            }
        };
        let cap = |field, value: i64| {
            if (0..=MAX_CAP).contains(&value) {
                Ok((value > 0).then_some(value as u32))
            } else {
                Err(invalid(field, format!("must be 0 (no cap) to {MAX_CAP}")))
            }
        };
        let min_gap = millis("min_gap_ms", self.min_gap_ms)?;
        let jitter = millis("jitter_ms", self.jitter_ms)?;
        let per_minute = cap("per_minute", self.per_minute)?;
        let per_hour = cap("per_hour", self.per_hour)?;
        let per_day = cap("per_day", self.per_day)?;
        let time_zone = parse_time_zone(&self.time_zone).ok_or_else(|| {
            invalid(
                "time_zone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)",
                    self.time_zone
                ),
            )
        })?;
        let quiet_hours = match &self.quiet_hours {
            None => None,
            Some(quiet) => {
                let start = parse_local_time(&quiet.start).ok_or_else(|| {
                    invalid(
                        "quiet_hours.start",
                        "must be a local time as HH:MM, e.g. 22:00",
                    )
                })?;
                let end = parse_local_time(&quiet.end).ok_or_else(|| {
                    invalid(
                        "quiet_hours.end",
                        "must be a local time as HH:MM, e.g. 07:00",
                    )
                })?;
                if start == end {
                    return Err(invalid(
                        "quiet_hours",
                        "start and end must differ (omit quiet_hours for none)",
                    ));
                }
                Some(QuietHours { start, end })
            }
        };
        if self.warmup_daily_caps.len() > MAX_WARMUP_DAYS {
            return Err(invalid(
                "warmup_daily_caps",
                format!("at most {MAX_WARMUP_DAYS} days"),
            ));
        }
        let mut warmup = Vec::with_capacity(self.warmup_daily_caps.len());
        for &day_cap in &self.warmup_daily_caps {
            if !(1..=MAX_CAP).contains(&day_cap) {
                return Err(invalid(
                    "warmup_daily_caps",
                    format!("each day's cap must be 1 to {MAX_CAP}"),
                ));
            }
            warmup.push(day_cap as u32);
        }
        Ok(PacingPolicy {
            enabled: self.enabled,
            min_gap,
            jitter,
            per_minute,
            per_hour,
            per_day,
            quiet_hours,
            time_zone,
            warmup_daily_caps: warmup,
        })
    }
}

/// Quiet hours in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Whether `time` (local) falls in them; the end itself is outside.
    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }
}

/// Checked pacing settings, as the pacer plans with them.
#[derive(Clone, Debug, PartialEq)]
pub struct PacingPolicy {
    pub enabled: bool,
    pub min_gap: Duration,
    pub jitter: Duration,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
    pub quiet_hours: Option<QuietHours>,
    pub time_zone: Tz,
    pub warmup_daily_caps: Vec<u32>,
}

impl PacingPolicy {
    /// No pacing at all.
    pub fn off() -> Self {
        Self {
            enabled: false,
            min_gap: Duration::ZERO,
            jitter: Duration::ZERO,
            per_minute: None,
            per_hour: None,
            per_day: None,
            quiet_hours: None,
            time_zone: Tz::UTC,
            warmup_daily_caps: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let policy = PacingSettings::default().check().unwrap();
        assert!(policy.enabled);
        assert_eq!(policy.per_day, Some(1_000));
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |change: fn(&mut PacingSettings)| {
            let mut settings = PacingSettings::default();
            change(&mut settings);
            settings.check().unwrap_err().field
        };
        assert_eq!(field(|s| s.min_gap_ms = -1), "min_gap_ms");
        assert_eq!(field(|s| s.jitter_ms = MAX_GAP_MS + 1), "jitter_ms");
        assert_eq!(field(|s| s.per_day = -3), "per_day");
        assert_eq!(field(|s| s.time_zone = "Mars/Olympus".into()), "time_zone");
        assert_eq!(
            field(|s| s.quiet_hours = Some(QuietHoursSettings {
                start: "25:00".into(),
                end: "07:00".into()
            })),
            "quiet_hours.start"
        );
        assert_eq!(
            field(|s| s.quiet_hours = Some(QuietHoursSettings {
                start: "22:00".into(),
                end: "7".into()
            })),
            "quiet_hours.end"
        );
        assert_eq!(
            field(|s| s.warmup_daily_caps = vec![0]),
            "warmup_daily_caps"
        );
    }

    #[test]
    fn quiet_hours_may_span_midnight() {
        let t = |text| parse_local_time(text).unwrap();
        let night = QuietHours {
            start: t("22:00"),
            end: t("07:00"),
        };
        assert!(night.contains(t("23:30")) && night.contains(t("03:00")));
        assert!(!night.contains(t("07:00")) && !night.contains(t("12:00")));
        let lunch = QuietHours {
            start: t("12:00"),
            end: t("13:00"),
        };
        assert!(lunch.contains(t("12:30")) && !lunch.contains(t("13:00")));
    }
}
