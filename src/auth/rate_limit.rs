//! Limits on password guessing: fixed-window attempt counters (per client address, and per
//! account and address together), and a growing delay per account that an attacker elsewhere
//! can impose on its owner — a delay, never a lock-out. In memory and per node: each node of a
//! cluster limits on its own.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct RateLimiter<K> {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`. `Err(retry_after)` once the window's budget is spent.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Forget finished windows now and then, so the map stays as large as recent traffic.
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let (start, count) = windows.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
        Ok(())
    }
}

/// A growing delay after repeated failures for one key: the first `free` failures cost
/// nothing, then each further attempt must wait `base · 2ⁿ` (at most `max`) after the last
/// failure. A success clears the key; so does a quiet `forget_after`.
pub struct FailureBackoff<K> {
    free: u32,
    base: Duration,
    max: Duration,
    forget_after: Duration,
    failures: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> FailureBackoff<K> {
    pub fn new(free: u32, base: Duration, max: Duration, forget_after: Duration) -> Self {
        Self {
            free,
            base,
            max,
            forget_after,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, u32)>> {
        self.failures
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn delay(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free + 1) {
            Some(over) => self.base.saturating_mul(1u32 << over.min(20)).min(self.max),
            None => Duration::ZERO,
        }
    }

    /// `Err(retry_after)` while `key` must still wait after its last failure.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.lock();
        let Some(&(last, count)) = failures.get(key) else {
            return Ok(());
        };
        let since = now.duration_since(last);
        if since >= self.forget_after {
            failures.remove(key);
            return Ok(());
        }
        match self.delay(count).checked_sub(since) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key: &K) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() > 10_000 {
            let forget_after = self.forget_after;
            failures.retain(|_, (last, _)| now.duration_since(*last) < forget_after);
        }
        let entry = failures.entry(key.clone()).or_insert((now, 0));
        *entry = (now, entry.1.saturating_add(1));
    }

    pub fn succeeded(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_refuses_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_ok());
        let retry = limiter.check(&"a").unwrap_err();
        assert!(retry > Duration::from_secs(55));
        assert!(limiter.check(&"b").is_ok());
    }

    #[test]
    fn failures_beyond_the_free_ones_cost_a_growing_delay_that_success_clears() {
        let backoff = FailureBackoff::new(
            2,
            Duration::from_secs(1),
            Duration::from_secs(8),
            Duration::from_secs(600),
        );
        for _ in 0..2 {
            assert!(backoff.check(&"ada").is_ok());
            backoff.failed(&"ada");
        }
        assert!(backoff.check(&"ada").is_ok(), "two failures are free");
        backoff.failed(&"ada");
        let first = backoff.check(&"ada").unwrap_err();
        backoff.failed(&"ada");
        let second = backoff.check(&"ada").unwrap_err();
        assert!(second > first, "{first:?} then {second:?}");
        for _ in 0..10 {
            backoff.failed(&"ada");
        }
        assert!(backoff.check(&"ada").unwrap_err() <= Duration::from_secs(8));
        assert!(backoff.check(&"bob").is_ok());
        backoff.succeeded(&"ada");
        assert!(backoff.check(&"ada").is_ok());
    }

    #[test]
    fn a_new_window_restores_the_budget() {
        let limiter = RateLimiter::new(1, Duration::from_millis(20));
        assert!(limiter.check(&1).is_ok());
        assert!(limiter.check(&1).is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limiter.check(&1).is_ok());
    }
}
