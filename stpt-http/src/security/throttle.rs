//! Counting failed sign-ins so that guessing passwords is slow.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers recent failures per key (client address and username) and refuses a key that
/// failed too often within the window.
///
/// Bounded in memory: keys are cut to [`LoginThrottle::MAX_KEY_BYTES`], and at most
/// `max_keys` are remembered. When the table is full, expired keys go first, then the
/// unlocked key whose last failure is oldest; a locked key is never forgotten before its
/// window passes, so filling the table cannot unlock anyone. With every key locked, a new
/// key's failure is not counted (that needs `max_keys` locked keys at once, each bought
/// with several password hashes).
///
/// Written here rather than taken from a rate-limiting crate because it counts *failures*,
/// not requests: users who sign in successfully never use up an allowance.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    max_keys: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// Keys remembered at most, by default.
    pub(crate) const MAX_KEYS: usize = 10_000;
    /// The longest key kept, in bytes; longer keys are cut (on a character boundary).
    pub(crate) const MAX_KEY_BYTES: usize = 256;

    pub(crate) fn new(max_failures: usize, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, Self::MAX_KEYS)
    }

    /// A throttle remembering at most `max_keys` keys.
    pub(crate) fn with_capacity(max_failures: usize, window: Duration, max_keys: usize) -> Self {
        LoginThrottle {
            max_failures,
            window,
            max_keys: max_keys.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `key` may try again, or `None` if it may try now.
    pub(crate) fn retry_after(&self, key: &str) -> Option<Duration> {
        let key = bounded(key);
        let now = Instant::now();
        let mut failures = self.lock();
        let recent = failures.get_mut(key)?;
        recent.retain(|at| now.duration_since(*at) < self.window);
        if recent.len() < self.max_failures {
            return None;
        }
        recent
            .front()
            .map(|oldest| self.window.saturating_sub(now.duration_since(*oldest)))
    }

    /// Records a failure of `key`.
    pub(crate) fn failed(&self, key: &str) {
        let key = bounded(key);
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= self.max_keys && !failures.contains_key(key) {
            let window = self.window;
            failures.retain(|_, recent| {
                recent.retain(|at| now.duration_since(*at) < window);
                !recent.is_empty()
            });
            if failures.len() >= self.max_keys {
                let max_failures = self.max_failures;
                let oldest_unlocked = failures
                    .iter()
                    .filter(|(_, recent)| recent.len() < max_failures)
                    .min_by_key(|(_, recent)| recent.back().copied())
                    .map(|(key, _)| key.clone());
                match oldest_unlocked {
                    Some(oldest) => {
                        failures.remove(&oldest);
                    }
                    None => {
                        tracing::warn!(
                            keys = failures.len(),
                            "sign-in throttle full of locked keys: a new failure is not counted"
                        );
                        return;
                    }
                }
            }
        }
        let recent = failures.entry(key.to_owned()).or_default();
        recent.push_back(now);
        while recent.len() > self.max_failures {
            recent.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub(crate) fn succeeded(&self, key: &str) {
        self.lock().remove(bounded(key));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn kept_bytes(&self) -> usize {
        self.lock().keys().map(String::len).sum()
    }
}

/// The key as kept: at most [`LoginThrottle::MAX_KEY_BYTES`] bytes.
fn bounded(key: &str) -> &str {
    let mut end = key.len().min(LoginThrottle::MAX_KEY_BYTES);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_too_many_failures_and_forgets_on_success() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(throttle.retry_after("k").is_none());
            throttle.failed("k");
        }
        let wait = throttle.retry_after("k");
        assert!(wait.is_some_and(|wait| wait <= Duration::from_secs(60)));
        assert!(throttle.retry_after("other").is_none());
        throttle.succeeded("k");
        assert!(throttle.retry_after("k").is_none());
    }

    #[test]
    fn failures_expire_with_the_window() {
        let throttle = LoginThrottle::new(1, Duration::from_millis(1));
        throttle.failed("k");
        std::thread::sleep(Duration::from_millis(5));
        assert!(throttle.retry_after("k").is_none());
    }

    #[test]
    fn keys_are_kept_bounded() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60));
        let huge = format!("10.0.0.1|{}", "é".repeat(750_000));
        for _ in 0..5 {
            throttle.failed(&huge);
        }
        assert!(throttle.kept_bytes() <= LoginThrottle::MAX_KEY_BYTES);
        assert!(throttle.retry_after(&huge).is_some());
    }

    #[test]
    fn filling_the_table_never_unlocks_a_locked_key() {
        let throttle = LoginThrottle::with_capacity(3, Duration::from_secs(60), 4);
        for _ in 0..3 {
            throttle.failed("victim-guesser");
        }
        assert!(throttle.retry_after("victim-guesser").is_some());
        for filler in 0..100 {
            throttle.failed(&format!("filler-{filler}"));
        }
        assert!(
            throttle.retry_after("victim-guesser").is_some(),
            "still locked after the table overflowed"
        );
        // The unlocked fillers made room for each other: the newest is counted.
        assert_eq!(throttle.lock().len(), 4);
        assert!(throttle.lock().contains_key("filler-99"));
    }

    #[test]
    fn a_table_of_locked_keys_keeps_them_all() {
        let throttle = LoginThrottle::with_capacity(1, Duration::from_secs(60), 2);
        throttle.failed("a");
        throttle.failed("b");
        throttle.failed("c");
        assert!(throttle.retry_after("a").is_some());
        assert!(throttle.retry_after("b").is_some());
        assert!(throttle.retry_after("c").is_none());
    }
}
