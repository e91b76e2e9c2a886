//! Fixed-window attempt counters, used to slow down password guessing per client address and
//! per account. In memory and per node: each node of a cluster limits on its own.

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
    fn a_new_window_restores_the_budget() {
        let limiter = RateLimiter::new(1, Duration::from_millis(20));
        assert!(limiter.check(&1).is_ok());
        assert!(limiter.check(&1).is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limiter.check(&1).is_ok());
    }
}
