//! Counting failed sign-ins so that guessing passwords is slow.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers recent failures per key (client address and username) and refuses a key that
/// failed too often within the window. Bounded: the oldest keys are forgotten past
/// [`LoginThrottle::MAX_KEYS`].
///
/// Written here rather than taken from a rate-limiting crate because it counts *failures*,
/// not requests: users who sign in successfully never use up an allowance.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// Keys remembered at most.
    const MAX_KEYS: usize = 10_000;

    pub(crate) fn new(max_failures: usize, window: Duration) -> Self {
        LoginThrottle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `key` may try again, or `None` if it may try now.
    pub(crate) fn retry_after(&self, key: &str) -> Option<Duration> {
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
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= Self::MAX_KEYS && !failures.contains_key(key) {
            let window = self.window;
            failures.retain(|_, recent| {
                recent
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
            if failures.len() >= Self::MAX_KEYS {
                failures.clear();
            }
        }
        let recent = failures.entry(key.to_string()).or_default();
        recent.push_back(now);
        while recent.len() > self.max_failures {
            recent.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub(crate) fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
}
