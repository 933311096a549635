//! Job quotas (`[edge.tasks]`): how many jobs a user may have running and queued, and submit
//! per day per kind. A user's own limits win over their role's, which win over the default.
//! Checked when a job is submitted; a refusal names the quota and when it frees up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tradeflow_core::job::JobKind;
use utoipa::ToSchema;

/// One set of limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaLimits {
    /// Submissions are refused while this many of the user's jobs are running.
    pub max_running: u32,
    /// Submissions are refused while this many of the user's jobs wait to start.
    pub max_queued: u32,
    /// Jobs submitted per UTC day, by kind (`backtest`, `hyperopt`, `download`, `train`).
    pub per_day: BTreeMap<String, u32>,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            max_running: 2,
            max_queued: 10,
            per_day: [("backtest", 500), ("hyperopt", 50), ("download", 50), ("train", 20)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

/// `[edge.tasks]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Everyone's limits unless their role or name has its own.
    pub quota: QuotaLimits,
    /// `[edge.tasks.role_quota.<role>]`.
    pub role_quota: BTreeMap<String, QuotaLimits>,
    /// `[edge.tasks.user_quota.<user>]`.
    pub user_quota: BTreeMap<String, QuotaLimits>,
}

impl TasksConfig {
    /// The limits that apply to `user` of `role`.
    pub fn limits(&self, user: &str, role: &str) -> &QuotaLimits {
        self.user_quota.get(user).or_else(|| self.role_quota.get(role)).unwrap_or(&self.quota)
    }

    pub fn validate(&self, p: &mut Vec<String>) {
        let all = std::iter::once(("edge.tasks.quota".to_string(), &self.quota))
            .chain(self.role_quota.iter().map(|(r, l)| (format!("edge.tasks.role_quota.{r}"), l)))
            .chain(self.user_quota.iter().map(|(u, l)| (format!("edge.tasks.user_quota.{u}"), l)));
        for (path, limits) in all {
            for kind in limits.per_day.keys() {
                if JobKind::parse(kind).is_none() {
                    p.push(format!("{path}.per_day.{kind}: unknown job kind; expected one of {}", JobKind::NAMES));
                }
            }
        }
        for role in self.role_quota.keys() {
            if !["viewer", "trader", "admin"].contains(&role.as_str()) {
                p.push(format!("edge.tasks.role_quota.{role}: unknown role; expected viewer, trader or admin"));
            }
        }
    }
}

/// What the user has now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub running: u32,
    pub queued: u32,
    /// Submitted today (UTC) of the kind being submitted.
    pub today: u32,
}

/// A submission over a quota.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QuotaRefusal {
    /// `max_running`, `max_queued` or `per_day.<kind>`.
    pub quota: String,
    pub limit: u32,
    pub used: u32,
    /// When it frees up: epoch ms (the next UTC midnight for a daily quota); `null` when it
    /// frees as the user's own jobs start or end, which is not known in advance.
    pub frees_at: Option<i64>,
    /// When it frees up, in words.
    pub frees: String,
}

/// Whether `usage` leaves room for one more job of `kind` under `limits`.
pub fn check(limits: &QuotaLimits, usage: &Usage, kind: JobKind, now_ms: i64) -> Result<(), QuotaRefusal> {
    if usage.running >= limits.max_running {
        return Err(QuotaRefusal {
            quota: "max_running".into(),
            limit: limits.max_running,
            used: usage.running,
            frees_at: None,
            frees: "when one of your running jobs ends".into(),
        });
    }
    if usage.queued >= limits.max_queued {
        return Err(QuotaRefusal {
            quota: "max_queued".into(),
            limit: limits.max_queued,
            used: usage.queued,
            frees_at: None,
            frees: "when one of your queued jobs starts or is cancelled".into(),
        });
    }
    if let Some(&limit) = limits.per_day.get(kind.name())
        && usage.today >= limit
    {
        let midnight = day_start(now_ms) + 86_400_000;
        return Err(QuotaRefusal {
            quota: format!("per_day.{}", kind.name()),
            limit,
            used: usage.today,
            frees_at: Some(midnight),
            frees: format!("at {} (UTC midnight)", tradeflow_core::time::iso_utc(midnight)),
        });
    }
    Ok(())
}

/// The start of `now_ms`'s UTC day.
pub fn day_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quota_refuses_with_its_name_and_the_daily_one_frees_at_midnight() {
        let limits = QuotaLimits { max_running: 1, max_queued: 2, per_day: [("backtest".to_string(), 3)].into() };
        let now = 86_400_000 * 10 + 5_000;
        assert!(check(&limits, &Usage { running: 0, queued: 1, today: 2 }, JobKind::Backtest, now).is_ok());
        let r = check(&limits, &Usage { running: 1, ..Default::default() }, JobKind::Backtest, now).unwrap_err();
        assert_eq!((r.quota.as_str(), r.limit, r.used, r.frees_at), ("max_running", 1, 1, None));
        let r = check(&limits, &Usage { queued: 2, ..Default::default() }, JobKind::Backtest, now).unwrap_err();
        assert_eq!(r.quota, "max_queued");
        let r = check(&limits, &Usage { today: 3, ..Default::default() }, JobKind::Backtest, now).unwrap_err();
        assert_eq!((r.quota.as_str(), r.frees_at), ("per_day.backtest", Some(86_400_000 * 11)));
        // No daily limit for a kind that has none.
        assert!(check(&limits, &Usage { today: 99, ..Default::default() }, JobKind::Hyperopt, now).is_ok());
    }

    #[test]
    fn a_user_beats_their_role_which_beats_the_default() {
        let mut c = TasksConfig::default();
        c.role_quota.insert("admin".into(), QuotaLimits { max_queued: 50, ..Default::default() });
        c.user_quota.insert("ann".into(), QuotaLimits { max_queued: 1, ..Default::default() });
        assert_eq!(c.limits("ann", "admin").max_queued, 1);
        assert_eq!(c.limits("bob", "admin").max_queued, 50);
        assert_eq!(c.limits("bob", "trader").max_queued, 10);
        let mut p = Vec::new();
        c.role_quota
            .insert("root".into(), QuotaLimits { per_day: [("mining".to_string(), 1)].into(), ..Default::default() });
        c.validate(&mut p);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
