//! Restart delays: capped exponential backoff with jitter.

use std::time::Duration;

/// Delay before restart number `attempt` (1-based): `base * 2^(attempt-1)`, capped at
/// `max`, plus up to 25 % jitter so sessions that crashed together do not all restart
/// in the same instant.
pub fn restart_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exponent).min(max);
    let jitter = raw.mul_f64(rand::random::<f64>() * 0.25);
    raw + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_and_stays_under_the_cap_plus_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, expected) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let delay = restart_delay(attempt, base, max);
            let floor = Duration::from_millis(expected);
            assert!(delay >= floor, "attempt {attempt}: {delay:?} < {floor:?}");
            assert!(
                delay <= floor.mul_f64(1.25),
                "attempt {attempt}: {delay:?} too long"
            );
        }
    }
}
