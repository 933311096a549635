//! An analyst's cache of valid answers: by key, each for the analyst's `cache_ttl_s`, at most
//! a fixed number of entries (the expired go first, then the soonest to expire). On tokio's
//! clock, which the tests can pause.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Longest time an entry is kept, whatever the configuration says (a year).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(365 * 86_400);

pub(crate) struct TtlCache<T> {
    ttl: Duration,
    cap: usize,
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T: Clone> TtlCache<T> {
    /// A `ttl` of zero keeps nothing; one over [`MAX_TTL`] is cut to it (an expiry past the
    /// clock's range would panic on the first `put`).
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Self { ttl: ttl.min(MAX_TTL), cap, entries: Mutex::new(HashMap::new()) }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, (Instant, T)>> {
        // Every step leaves the map consistent; a panic elsewhere does not spoil it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &str) -> Option<T> {
        if self.ttl.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut entries = self.entries();
        match entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: &str, value: &T) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() >= self.cap {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.cap
                && let Some(oldest) = entries.iter().min_by_key(|(_, (e, _))| *e).map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key.to_string(), (now + self.ttl, value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_the_cap_holds() {
        let cache = TtlCache::new(Duration::from_secs(10), 2);
        cache.put("a", &1);
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.put("b", &2);
        cache.put("c", &3);
        assert_eq!((cache.get("a"), cache.get("b"), cache.get("c")), (None, Some(2), Some(3)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.get("b"), None);
        let none = TtlCache::new(Duration::ZERO, 2);
        none.put("a", &1);
        assert_eq!(none.get("a"), None);
    }

    /// Regression (issue #23): a `cache_ttl_s` of `u64::MAX` seconds made `put` panic
    /// ("overflow when adding duration to instant").
    #[tokio::test(start_paused = true)]
    async fn a_huge_ttl_is_cut_to_a_year() {
        let cache = TtlCache::new(Duration::from_secs(u64::MAX), 2);
        cache.put("a", &1);
        assert_eq!(cache.get("a"), Some(1));
        tokio::time::advance(MAX_TTL).await;
        assert_eq!(cache.get("a"), None);
    }
}
