//! The pacer: one session's memory of when its number sent, and the plan of when each queued
//! message may go out under its [`PacingPolicy`] (gap with jitter, caps per minute, hour and
//! local day, quiet hours, warm-up) and WhatsApp's own rate-overlimit answers. It decides
//! nothing about the database: the sender claims what the plan says is due and stores the
//! rest of the plan as each message's `not_before`.

use std::collections::VecDeque;
use std::time::Duration;

use super::policy::PacingPolicy;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};

/// The history kept covers this much, enough for the longest window (a local day, which
/// may have 25 hours).
const HISTORY: chrono::TimeDelta = chrono::TimeDelta::hours(26);

/// The first wait after a rate-overlimit answer without its own `backoff`; each one in a
/// row doubles it, up to [`MAX_PENALTY`].
pub const BASE_PENALTY: Duration = Duration::from_secs(5);
pub const MAX_PENALTY: Duration = Duration::from_secs(300);

/// After a rate-overlimit answer the gap between messages is at least this times the
/// slow-down factor, even with pacing off.
const SLOWDOWN_GAP: Duration = Duration::from_millis(500);
const MAX_SLOWDOWN: u32 = 16;
/// Messages sent without a refusal before the slow-down halves again.
const SLOWDOWN_RECOVERY: u32 = 20;

/// Rounds of adjustment before a planned time is taken as it is (each round only moves it
/// later, and a handful always settles the rules).
const ROUNDS: usize = 16;

pub struct Pacer {
    policy: PacingPolicy,
    /// When the number was linked: the warm-up counts days from it.
    linked_at: Option<DateTime<Utc>>,
    /// Send times, oldest first, bounded by what the caps need.
    sent: VecDeque<DateTime<Utc>>,
    /// The gap before the next message, rolled once per send so that plans agree.
    next_gap: Duration,
    /// WhatsApp answered rate-overlimit: nothing goes out before this.
    penalty_until: Option<DateTime<Utc>>,
    penalty: Duration,
    slowdown: u32,
    since_refusal: u32,
}

impl Pacer {
    /// A pacer for `policy`, knowing the number's recent sends (any order).
    pub fn new(
        policy: PacingPolicy,
        linked_at: Option<DateTime<Utc>>,
        mut history: Vec<DateTime<Utc>>,
    ) -> Self {
        history.sort();
        let mut pacer = Self {
            policy,
            linked_at,
            sent: VecDeque::new(),
            next_gap: Duration::ZERO,
            penalty_until: None,
            penalty: Duration::ZERO,
            slowdown: 1,
            since_refusal: 0,
        };
        pacer.next_gap = pacer.roll_gap();
        if pacer.policy.enabled {
            let keep = pacer.history_needed();
            let skip = history.len().saturating_sub(keep);
            pacer.sent = history.into_iter().skip(skip).collect();
        }
        pacer
    }

    pub fn policy(&self) -> &PacingPolicy {
        &self.policy
    }

    /// Swaps the policy (an admin changed it), keeping what was sent and any penalty.
    pub fn set_policy(&mut self, policy: PacingPolicy, linked_at: Option<DateTime<Utc>>) {
        self.policy = policy;
        self.linked_at = linked_at;
        self.next_gap = self.roll_gap();
        let keep = self.history_needed();
        while self.sent.len() > keep {
            self.sent.pop_front();
        }
    }

    /// How many past sends the caps need to see.
    pub fn history_needed(&self) -> usize {
        if !self.policy.enabled {
            return 0;
        }
        let caps = [
            self.policy.per_minute,
            self.policy.per_hour,
            self.policy.per_day,
            self.policy.warmup_daily_caps.iter().copied().max(),
        ];
        caps.into_iter().flatten().max().unwrap_or(1).max(1) as usize
    }

    fn gap_floor(&self) -> Duration {
        let base = self.policy.min_gap.max(if self.slowdown > 1 {
            SLOWDOWN_GAP
        } else {
            Duration::ZERO
        });
        base * self.slowdown
    }

    fn roll_gap(&self) -> Duration {
        let jitter = if self.policy.enabled && !self.policy.jitter.is_zero() {
            self.policy.jitter.mul_f64(rand::random::<f64>())
        } else {
            Duration::ZERO
        };
        let floor = if self.policy.enabled || self.slowdown > 1 {
            self.gap_floor()
        } else {
            Duration::ZERO
        };
        floor + jitter
    }

    /// When each of the next `count` messages may go out, from `now` on, in queue order
    /// (never decreasing). Those at or before `now` are due.
    pub fn plan(&self, now: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let start = match self.penalty_until {
            Some(until) if until > now => until,
            _ => now,
        };
        let paced = self.policy.enabled || self.slowdown > 1;
        if !paced {
            return vec![start; count];
        }
        let mut timeline: Vec<DateTime<Utc>> = self.sent.iter().copied().collect();
        // Later messages are planned with the middle of the jitter: an estimate that stays
        // put from one plan to the next.
        let later_gap = self.gap_floor() + self.policy.jitter / 2;
        let mut planned = Vec::with_capacity(count);
        for position in 0..count {
            let gap = if position == 0 {
                self.next_gap
            } else {
                later_gap
            };
            let mut at = start;
            if let Some(&last) = timeline.last() {
                at = at.max(last + gap);
            }
            if self.policy.enabled {
                for _ in 0..ROUNDS {
                    let before = at;
                    at = self.after_quiet_hours(at);
                    at = after_window(&timeline, at, self.policy.per_minute, 60);
                    at = after_window(&timeline, at, self.policy.per_hour, 3_600);
                    at = self.after_day_cap(&timeline, at);
                    if at == before {
                        break;
                    }
                }
            }
            timeline.push(at);
            planned.push(at);
        }
        planned
    }

    /// The message planned first: when it is due.
    pub fn next_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.plan(now, 1)[0]
    }

    /// A message went out at `at`.
    pub fn record_sent(&mut self, at: DateTime<Utc>) {
        self.since_refusal += 1;
        self.penalty = Duration::ZERO;
        if self.slowdown > 1 && self.since_refusal >= SLOWDOWN_RECOVERY {
            self.slowdown /= 2;
            self.since_refusal = 0;
        }
        if self.policy.enabled || self.slowdown > 1 {
            self.sent.push_back(at);
            let keep = self.history_needed().max(1);
            while self.sent.len() > keep || self.sent.front().is_some_and(|&t| t < at - HISTORY) {
                self.sent.pop_front();
            }
        }
        self.next_gap = self.roll_gap();
    }

    /// WhatsApp refused a send as over its rate (`backoff`: the wait it asked for, if any):
    /// wait that long, or longer each time in a row, and space messages wider for a while.
    /// Answers when sending may resume.
    pub fn rate_limited(&mut self, now: DateTime<Utc>, backoff: Option<Duration>) -> DateTime<Utc> {
        self.penalty = match backoff {
            Some(asked) => asked.min(MAX_PENALTY),
            None if self.penalty.is_zero() => BASE_PENALTY,
            None => (self.penalty * 2).min(MAX_PENALTY),
        };
        self.slowdown = (self.slowdown * 2).min(MAX_SLOWDOWN);
        self.since_refusal = 0;
        self.next_gap = self.roll_gap();
        let until = now + self.penalty;
        self.penalty_until = Some(self.penalty_until.map_or(until, |old| old.max(until)));
        until
    }

    /// The first moment at or after `at` outside quiet hours.
    fn after_quiet_hours(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let Some(quiet) = self.policy.quiet_hours else {
            return at;
        };
        let zone = self.policy.time_zone;
        let local = at.with_timezone(&zone);
        if !quiet.contains(local.time()) {
            return at;
        }
        let date = local.date_naive();
        let end_date = if local.time() < quiet.end {
            date
        } else {
            date + Days::new(1)
        };
        local_instant(&zone, end_date, quiet.end).max(at)
    }

    /// The daily cap (the lower of `per_day` and the warm-up's) of the local day of `at`.
    fn day_cap(&self, date: NaiveDate) -> Option<u32> {
        let warmup = self.linked_at.and_then(|linked| {
            let linked_date = linked.with_timezone(&self.policy.time_zone).date_naive();
            let day = (date - linked_date).num_days();
            usize::try_from(day)
                .ok()
                .and_then(|day| self.policy.warmup_daily_caps.get(day).copied())
        });
        match (self.policy.per_day, warmup) {
            (Some(cap), Some(warm)) => Some(cap.min(warm)),
            (cap, warm) => cap.or(warm),
        }
    }

    /// `at`, or the start of the next local day if the day of `at` used its cap.
    fn after_day_cap(&self, timeline: &[DateTime<Utc>], at: DateTime<Utc>) -> DateTime<Utc> {
        let zone = self.policy.time_zone;
        let date = at.with_timezone(&zone).date_naive();
        let Some(cap) = self.day_cap(date) else {
            return at;
        };
        let day_start = local_instant(&zone, date, NaiveTime::MIN);
        let today = timeline.len() - timeline.partition_point(|&t| t < day_start);
        if today < cap as usize {
            return at;
        }
        local_instant(&zone, date + Days::new(1), NaiveTime::MIN).max(at)
    }
}

/// `at`, or the moment the oldest send that keeps a window of `seconds` full leaves it.
fn after_window(
    timeline: &[DateTime<Utc>],
    at: DateTime<Utc>,
    cap: Option<u32>,
    seconds: i64,
) -> DateTime<Utc> {
    let Some(cap) = cap.map(|cap| cap as usize) else {
        return at;
    };
    let window = chrono::TimeDelta::seconds(seconds);
    let inside = timeline.len() - timeline.partition_point(|&t| t <= at - window);
    if inside < cap {
        return at;
    }
    // The window after `at` must lose `inside - cap + 1` sends: the oldest of those leaves
    // it `window` after it was sent.
    let leaving = timeline[timeline.len() - cap];
    (leaving + window).max(at)
}

/// `date` at local `time` in `zone`, as an instant: the earlier one when clocks go back,
/// and the moment clocks jump past it when they go forward.
fn local_instant(zone: &chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    for minutes in 0..=180 {
        let candidate = local + chrono::TimeDelta::minutes(minutes);
        if let Some(instant) = zone.from_local_datetime(&candidate).earliest() {
            return instant.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::policy::QuietHours;

    fn policy() -> PacingPolicy {
        PacingPolicy {
            enabled: true,
            ..PacingPolicy::off()
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn off_sends_everything_now() {
        let pacer = Pacer::new(PacingPolicy::off(), None, vec![]);
        let now = at("2026-12-02T10:00:00Z");
        assert_eq!(pacer.plan(now, 3), vec![now; 3]);
    }

    #[test]
    fn a_gap_spaces_messages_and_jitter_only_adds() {
        let pacer = Pacer::new(
            PacingPolicy {
                min_gap: Duration::from_secs(1),
                jitter: Duration::from_millis(500),
                ..policy()
            },
            None,
            vec![at("2026-12-02T09:59:59.800Z")],
        );
        let plan = pacer.plan(at("2026-12-02T10:00:00Z"), 4);
        for pair in plan.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= chrono::TimeDelta::seconds(1), "{gap}");
        }
        assert!(plan[0] >= at("2026-12-02T10:00:00.800Z"));
    }

    #[test]
    fn a_daily_cap_moves_the_rest_to_the_next_local_day() {
        let zone: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let pacer = Pacer::new(
            PacingPolicy {
                per_day: Some(3),
                time_zone: zone,
                ..policy()
            },
            None,
            vec![],
        );
        // 10:00 in Tokyo.
        let plan = pacer.plan(at("2026-12-02T01:00:00Z"), 5);
        assert_eq!(plan[2], at("2026-12-02T01:00:00Z"));
        // Midnight in Tokyo is 15:00 UTC.
        assert_eq!(plan[3], at("2026-12-02T15:00:00Z"));
        assert_eq!(plan[4], at("2026-12-02T15:00:00Z"));
    }

    #[test]
    fn the_minute_and_hour_caps_hold() {
        let pacer = Pacer::new(
            PacingPolicy {
                per_minute: Some(2),
                per_hour: Some(3),
                ..policy()
            },
            None,
            vec![],
        );
        let now = at("2026-12-02T10:00:00Z");
        let plan = pacer.plan(now, 4);
        assert_eq!(&plan[..2], &[now, now]);
        assert_eq!(plan[2], at("2026-12-02T10:01:00Z"));
        assert_eq!(plan[3], at("2026-12-02T11:00:00Z"));
    }

    #[test]
    fn quiet_hours_hold_until_their_end_in_the_zone() {
        let zone: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let pacer = Pacer::new(
            PacingPolicy {
                quiet_hours: Some(QuietHours {
                    start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
                    end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
                }),
                time_zone: zone,
                ..policy()
            },
            None,
            vec![],
        );
        // 23:30 in Berlin (UTC+1 in December): held until 07:00 Berlin, 06:00 UTC.
        let plan = pacer.plan(at("2026-12-02T22:30:00Z"), 1);
        assert_eq!(plan[0], at("2026-12-03T06:00:00Z"));
        let noon = at("2026-12-02T11:00:00Z");
        assert_eq!(pacer.plan(noon, 1)[0], noon);
    }

    #[test]
    fn warm_up_lowers_the_first_days_caps() {
        let linked = at("2026-12-01T08:00:00Z");
        let pacer = Pacer::new(
            PacingPolicy {
                per_day: Some(100),
                warmup_daily_caps: vec![1, 2],
                ..policy()
            },
            Some(linked),
            vec![at("2026-12-02T08:00:00Z")],
        );
        // Day 2 of linking: cap 2, one sent already.
        let plan = pacer.plan(at("2026-12-02T09:00:00Z"), 3);
        assert_eq!(plan[0], at("2026-12-02T09:00:00Z"));
        assert_eq!(plan[1], at("2026-12-03T00:00:00Z"));
        // Day 3: past the warm-up, the full cap.
        assert_eq!(plan[2], at("2026-12-03T00:00:00Z"));
    }

    #[test]
    fn rate_overlimit_waits_and_slows_down_even_unpaced() {
        let mut pacer = Pacer::new(PacingPolicy::off(), None, vec![]);
        let now = at("2026-12-02T10:00:00Z");
        let until = pacer.rate_limited(now, None);
        assert_eq!(until, now + BASE_PENALTY);
        let plan = pacer.plan(now, 2);
        assert_eq!(plan[0], until);
        assert!(plan[1] - plan[0] >= chrono::TimeDelta::milliseconds(1_000));
        let again = pacer.rate_limited(until, None);
        assert_eq!(again, until + BASE_PENALTY * 2);
        let asked = pacer.rate_limited(again, Some(Duration::from_secs(1)));
        assert_eq!(asked, again + Duration::from_secs(1));
    }
}
