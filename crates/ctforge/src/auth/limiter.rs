//! Login rate limiting: failures per client address and per user name back off exponentially.
//! Process-local; behind a load balancer each web process limits on its own.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures allowed before back-off starts.
const FREE_FAILURES: u32 = 3;
/// Longest wait imposed.
const MAX_DELAY_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    blocked_until: i64,
}

/// Tracks failed sign-ins.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LoginLimiter {
    /// Milliseconds the caller must still wait before another attempt, if any.
    pub fn wait_ms(&self, keys: &[String], now_ms: i64) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.blocked_until - now_ms)
            .filter(|w| *w > 0)
            .max()
    }

    /// Records a failure for every key.
    pub fn failure(&self, keys: &[String], now_ms: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let entry = entries.entry(key.clone()).or_default();
            entry.failures += 1;
            if entry.failures > FREE_FAILURES {
                let exponent = (entry.failures - FREE_FAILURES - 1).min(16);
                let delay = (1000i64 << exponent).min(MAX_DELAY_MS);
                entry.blocked_until = now_ms + delay;
            }
        }
        if entries.len() > 100_000 {
            entries.retain(|_, e| e.blocked_until > now_ms);
        }
    }

    /// Forgets the failures of every key (after a successful sign-in).
    pub fn success(&self, keys: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_after_free_failures_and_resets() {
        let limiter = LoginLimiter::default();
        let keys = vec!["ip:1".to_owned(), "user:a".to_owned()];
        for _ in 0..FREE_FAILURES {
            limiter.failure(&keys, 0);
            assert_eq!(limiter.wait_ms(&keys, 0), None);
        }
        limiter.failure(&keys, 0);
        assert_eq!(limiter.wait_ms(&keys, 0), Some(1000));
        limiter.failure(&keys, 0);
        assert_eq!(limiter.wait_ms(&keys, 0), Some(2000));
        assert_eq!(limiter.wait_ms(&["user:a".to_owned()], 1500), Some(500));
        limiter.success(&keys);
        assert_eq!(limiter.wait_ms(&keys, 0), None);
    }
}
