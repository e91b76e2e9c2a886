//! Request rate limits on the HTTP API: a token bucket per account, shared by all its API
//! keys, and one per key whose owner gave it a lower rate. A request spends one token from
//! each bucket that applies, or none when any is empty. The buckets live in PostgreSQL (beside
//! the key and the account, spent in the statement that looks the key up, see
//! [`crate::api_keys::authenticate`]), so every node of a cluster spends from the same ones.
//!
//! This module is the arithmetic on what that statement answers: which bucket a client should
//! be told about (`RateLimit-*` headers), and how long to wait (`Retry-After`).

use std::time::Duration;

/// A bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second, up to `burst`.
    pub per_second: f64,
    /// How many tokens the bucket holds: the most requests that may arrive at once.
    pub burst: u32,
}

/// A bucket after a request was counted: its rate and the tokens left (fractions included).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub rate: Rate,
    pub tokens: f64,
}

impl Bucket {
    fn remaining(&self) -> u32 {
        self.tokens.clamp(0.0, f64::from(self.rate.burst)).floor() as u32
    }

    /// Until the bucket is full again.
    fn until_full(&self) -> Duration {
        seconds((f64::from(self.rate.burst) - self.tokens) / self.rate.per_second)
    }

    /// Until the bucket holds a whole token.
    fn until_token(&self) -> Duration {
        seconds((1.0 - self.tokens) / self.rate.per_second)
    }
}

fn seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// Whole seconds, rounded up: a client that waits this long finds what was promised.
fn whole_seconds(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// What the check decided for one request, as the answer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub allowed: bool,
    /// `RateLimit-Limit`: the size of the tightest bucket.
    pub limit: u32,
    /// `RateLimit-Remaining`: whole requests that bucket still allows at once.
    pub remaining: u32,
    /// `RateLimit-Reset`: seconds until that bucket is full again.
    pub reset_secs: u64,
    /// `Retry-After` of a refused request: seconds until every bucket holds a token again
    /// (at least 1).
    pub retry_after_secs: u64,
}

impl RateStatus {
    /// The status of a request after spending from `buckets` (each one that applied).
    pub fn of(allowed: bool, buckets: &[Bucket]) -> RateStatus {
        let tightest = buckets
            .iter()
            .min_by_key(|bucket| (bucket.remaining(), bucket.rate.burst))
            .copied();
        let wait = buckets
            .iter()
            .map(Bucket::until_token)
            .max()
            .unwrap_or_default();
        match tightest {
            Some(bucket) => RateStatus {
                allowed,
                limit: bucket.rate.burst,
                remaining: bucket.remaining(),
                reset_secs: whole_seconds(bucket.until_full()),
                retry_after_secs: whole_seconds(wait).max(1),
            },
            None => RateStatus {
                allowed,
                limit: 0,
                remaining: 0,
                reset_secs: 0,
                retry_after_secs: 1,
            },
        }
    }

    /// The `RateLimit-*` headers (and, when refused, `Retry-After`) as (name, value).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_secs.to_string()),
        ];
        if !self.allowed {
            headers.push(("retry-after", self.retry_after_secs.to_string()));
        }
        headers
    }

    /// Adds [`RateStatus::headers`] to an answer's.
    pub fn insert_headers(&self, headers: &mut warp::http::HeaderMap) {
        for (name, value) in self.headers() {
            if let Ok(value) = warp::http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: Rate = Rate {
        per_second: 2.0,
        burst: 10,
    };
    const KEY: Rate = Rate {
        per_second: 0.5,
        burst: 3,
    };

    #[test]
    fn the_tightest_bucket_is_reported() {
        let status = RateStatus::of(
            true,
            &[
                Bucket {
                    rate: ACCOUNT,
                    tokens: 8.5,
                },
                Bucket {
                    rate: KEY,
                    tokens: 1.0,
                },
            ],
        );
        assert_eq!(status.limit, 3);
        assert_eq!(status.remaining, 1);
        // Two tokens missing at half a token per second.
        assert_eq!(status.reset_secs, 4);
    }

    #[test]
    fn a_refused_request_waits_for_the_slowest_bucket_rounded_up() {
        let status = RateStatus::of(
            false,
            &[
                Bucket {
                    rate: ACCOUNT,
                    tokens: 0.0,
                },
                Bucket {
                    rate: KEY,
                    tokens: 0.2,
                },
            ],
        );
        assert!(!status.allowed);
        // The key needs 0.8 tokens at 0.5/s: 1.6 s, so 2 s.
        assert_eq!(status.retry_after_secs, 2);
        assert!(status.headers().contains(&("retry-after", "2".into())));
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let status = RateStatus::of(
            false,
            &[Bucket {
                rate: Rate {
                    per_second: 1000.0,
                    burst: 5,
                },
                tokens: 0.99,
            }],
        );
        assert_eq!(status.retry_after_secs, 1);
    }
}
