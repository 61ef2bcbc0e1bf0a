//! Login rate limiting per (user name, client address): a few free attempts, then exponential
//! back-off. An attempt is *reserved* before Proxmox is asked ([`LoginLimiter::reserve`]), so
//! parallel guesses cannot all get through between the check and the record; the client address
//! is the socket peer or what a trusted proxy reports (`[server] trusted_proxy_header`), so one
//! client behind a proxy cannot lock out the others. Process-local; behind a load balancer
//! each web process limits on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Failed attempts allowed before back-off starts.
const FREE_FAILURES: u32 = 3;
/// Longest wait imposed.
const MAX_DELAY_MS: i64 = 5 * 60 * 1000;
/// Suggested wait when the attempt was refused because others are still in flight.
const BUSY_WAIT_MS: i64 = 1000;
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 100_000;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    blocked_until: i64,
    in_flight: u32,
}

impl Entry {
    /// Attempts that may be in flight at once: the free ones left, and one at a time once
    /// back-off has started.
    fn allowance(&self) -> u32 {
        FREE_FAILURES.saturating_sub(self.failures).max(1)
    }
}

/// Tracks sign-in attempts per (user, client).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The key of a user signing in from a client address.
pub fn key(userid: &str, client: &str) -> String {
    format!("{}\u{0}{client}", userid.to_lowercase())
}

/// One reserved attempt. Report its outcome with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped without either (Proxmox unreachable, an error), it is
/// released and counts as nothing.
#[derive(Debug)]
pub struct Attempt {
    limiter: Arc<LoginLimiter>,
    key: String,
    done: bool,
}

impl LoginLimiter {
    /// Reserves an attempt for `key`, or answers the milliseconds to wait. Check and
    /// reservation happen under one lock, so of N parallel attempts only the allowance passes.
    pub fn reserve(self: &Arc<Self>, key: &str, now_ms: i64) -> Result<Attempt, i64> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > SWEEP_AT {
            entries.retain(|_, e| e.in_flight > 0 || e.blocked_until > now_ms);
        }
        let entry = entries.entry(key.to_owned()).or_default();
        if entry.blocked_until > now_ms {
            return Err(entry.blocked_until - now_ms);
        }
        if entry.in_flight >= entry.allowance() {
            return Err(BUSY_WAIT_MS);
        }
        entry.in_flight += 1;
        Ok(Attempt {
            limiter: self.clone(),
            key: key.to_owned(),
            done: false,
        })
    }

    /// Milliseconds `key` must still wait, if blocked (the second-factor step checks it).
    pub fn wait_ms(&self, key: &str, now_ms: i64) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .map(|e| e.blocked_until - now_ms)
            .filter(|w| *w > 0)
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub fn success(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(key) {
            entry.failures = 0;
            entry.blocked_until = 0;
            if entry.in_flight == 0 {
                entries.remove(key);
            }
        }
    }

    fn release(&self, key: &str) -> Option<()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get_mut(key)?;
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if entry.in_flight == 0 && entry.failures == 0 {
            entries.remove(key);
        }
        Some(())
    }
}

fn fail(entry: &mut Entry, now_ms: i64) {
    entry.failures = entry.failures.saturating_add(1);
    if entry.failures >= FREE_FAILURES {
        let exponent = (entry.failures - FREE_FAILURES).min(16);
        let delay = (1000i64 << exponent).min(MAX_DELAY_MS);
        entry.blocked_until = entry.blocked_until.max(now_ms + delay);
    }
}

impl Attempt {
    /// Proxmox refused the credentials.
    pub fn failed(mut self, now_ms: i64) {
        self.done = true;
        let limiter = self.limiter.clone();
        let mut entries = limiter.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(self.key.clone()).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        fail(entry, now_ms);
    }

    /// Proxmox accepted the credentials (a second factor may still follow).
    pub fn succeeded(mut self) {
        self.done = true;
        let _ = self.limiter.release(&self.key);
        self.limiter.success(&self.key);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.limiter.release(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_attempts_beyond_the_allowance_are_refused_before_proxmox() {
        let limiter = Arc::new(LoginLimiter::default());
        let k = key("root@pam", "10.0.0.1");
        let held: Vec<_> = (0..30)
            .filter_map(|_| limiter.reserve(&k, 0).ok())
            .collect();
        assert_eq!(
            held.len(),
            FREE_FAILURES as usize,
            "only the free attempts pass"
        );
        for attempt in held {
            attempt.failed(0);
        }
        assert_eq!(limiter.wait_ms(&k, 0), Some(1000));
        assert!(limiter.reserve(&k, 500).is_err());
        // After the wait one attempt at a time; a right password clears the record.
        let a = limiter.reserve(&k, 1000).expect("allowed after the wait");
        assert!(limiter.reserve(&k, 1000).is_err(), "one at a time");
        a.succeeded();
        assert!(limiter.reserve(&k, 1000).is_ok());
    }

    #[test]
    fn backs_off_exponentially_and_keys_are_per_user_and_client() {
        let limiter = Arc::new(LoginLimiter::default());
        let k = key("alice@pve", "10.0.0.1");
        for _ in 0..FREE_FAILURES {
            limiter.reserve(&k, 0).expect("free").failed(0);
        }
        assert_eq!(limiter.wait_ms(&k, 0), Some(1000));
        limiter.reserve(&k, 1000).expect("after wait").failed(1000);
        assert_eq!(limiter.wait_ms(&k, 1000), Some(2000));
        // The same user from another client, and another user from the same client, go on.
        assert!(limiter.reserve(&key("alice@pve", "10.0.0.2"), 1000).is_ok());
        assert!(limiter.reserve(&key("bob@pve", "10.0.0.1"), 1000).is_ok());
    }

    #[test]
    fn an_attempt_dropped_without_outcome_is_released() {
        let limiter = Arc::new(LoginLimiter::default());
        let k = key("root@pam", "::1");
        for _ in 0..10 {
            drop(limiter.reserve(&k, 0).expect("released each time"));
        }
        assert_eq!(limiter.wait_ms(&k, 0), None);
    }
}
