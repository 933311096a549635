//! `[jobs]` of the config file: per kind, how many attempts a job gets and how long one may
//! run.
//!
//! ```toml
//! [jobs.backtest]
//! max_attempts = 3      # runs of a job (crashes included) before it is failed and dead-lettered
//! timeout_s = 3600      # a run past this is failed with `timeout`
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tradeflow_core::job::JobKind;

/// One kind's limits.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KindLimits {
    pub max_attempts: u32,
    pub timeout_s: u64,
}

impl Default for KindLimits {
    fn default() -> Self {
        KindLimits { max_attempts: 3, timeout_s: 3600 }
    }
}

impl KindLimits {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

/// `[jobs]`: limits per kind; a kind not named has the defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct JobsConfig {
    pub kinds: BTreeMap<String, KindLimits>,
}

impl JobsConfig {
    pub fn limits(&self, kind: JobKind) -> KindLimits {
        self.kinds.get(kind.name()).copied().unwrap_or_default()
    }

    /// Every problem, each with its key path. `max_deliveries`: the jobs.requests stream's,
    /// which must leave the worker room to count a kind's attempts itself.
    pub fn validate(&self, max_deliveries: u32, problems: &mut Vec<String>) {
        for (kind, limits) in &self.kinds {
            let path = format!("jobs.{kind}");
            if JobKind::parse(kind).is_none() {
                problems.push(format!("{path}: unknown job kind; expected one of {}", JobKind::NAMES));
            }
            if !(1..max_deliveries).contains(&limits.max_attempts) {
                problems.push(format!(
                    "{path}.max_attempts: expected 1 to {} (below jobs.requests' max_deliveries, {max_deliveries}), got {}",
                    max_deliveries.saturating_sub(1),
                    limits.max_attempts
                ));
            }
            if !(1..=30 * 86_400).contains(&limits.timeout_s) {
                problems.push(format!("{path}.timeout_s: expected 1 to 2592000, got {}", limits.timeout_s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_and_unnamed_kinds_get_the_defaults() {
        let c: JobsConfig =
            toml::from_str("[backtest]\nmax_attempts = 0\ntimeout_s = 0\n[mining]\nmax_attempts = 2\n").unwrap();
        let mut p = Vec::new();
        c.validate(10, &mut p);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|e| e.starts_with("jobs.backtest.max_attempts")));
        assert!(p.iter().any(|e| e.starts_with("jobs.mining: unknown job kind")));
        assert_eq!(c.limits(JobKind::Hyperopt), KindLimits::default());
    }
}
