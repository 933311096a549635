//! Failed logins slow down per user, whatever address they come from: the per-address rate
//! limit (`auth_per_minute`) stops one machine guessing fast, this stops many machines guessing
//! one user's password. After [`FREE_FAILURES`] failures in a row, each further failure makes
//! the user wait twice as long before the next attempt is even checked (1 s, 2 s, 4 s, … up to
//! [`MAX_WAIT`]); a success, or [`FORGET_AFTER`] without a failure, starts the count again.
//! Only configured users are counted (an unknown name has nothing to guess and no entry), so
//! the table is as large as the user list.
//!
//! The cost: someone who knows a user name can make that user wait up to [`MAX_WAIT`] per
//! attempt (never locked out for good); docs/security.md weighs it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that cost nothing.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// A count with no failure for this long starts again.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// No attempt is checked before this.
    wait_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LoginGuard {
    users: Mutex<HashMap<String, Failures>>,
}

impl LoginGuard {
    /// `Err(wait)` while `user` must wait before an attempt is checked.
    pub fn check(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get(user).and_then(|f| f.wait_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns the wait it now imposes, if any.
    pub fn failed(&self, user: &str, now: Instant) -> Option<Duration> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let f = users.entry(user.to_string()).or_insert(Failures { count: 0, last: now, wait_until: None });
        if now.duration_since(f.last) > FORGET_AFTER {
            *f = Failures { count: 0, last: now, wait_until: None };
        }
        f.count += 1;
        f.last = now;
        let over = f.count.checked_sub(FREE_FAILURES).filter(|n| *n > 0)?;
        let wait = Duration::from_secs(1u64 << (over - 1).min(20)).min(MAX_WAIT);
        f.wait_until = Some(now + wait);
        Some(wait)
    }

    /// A successful login: the count starts again.
    pub fn succeeded(&self, user: &str) {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_double_the_wait_until_a_success() {
        let g = LoginGuard::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES {
            assert_eq!(g.check("ops", t0), Ok(()), "attempt {i}");
            assert_eq!(g.failed("ops", t0), None);
        }
        assert_eq!(g.failed("ops", t0), Some(Duration::from_secs(1)));
        assert_eq!(g.check("ops", t0), Err(Duration::from_secs(1)));
        assert_eq!(g.check("other", t0), Ok(()), "per user");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.check("ops", t1), Ok(()));
        assert_eq!(g.failed("ops", t1), Some(Duration::from_secs(2)));
        assert_eq!(g.failed("ops", t1), Some(Duration::from_secs(4)));
        for _ in 0..30 {
            g.failed("ops", t1);
        }
        assert_eq!(g.check("ops", t1), Err(MAX_WAIT));
        g.succeeded("ops");
        assert_eq!(g.check("ops", t1), Ok(()));
        // A long quiet spell forgets the count.
        for _ in 0..FREE_FAILURES {
            g.failed("ann", t0);
        }
        assert_eq!(g.failed("ann", t0 + FORGET_AFTER + Duration::from_secs(1)), None);
    }
}
