//! The retrain schedule (`[models.retrain]` of the config file): a jobs worker submits a
//! retrain (a `train` job with `{name, retrain: true}`, what `POST /models/{name}/retrain`
//! queues) of every deployed learned model whose newest version is older than `every_days`.
//!
//! ```toml
//! [models.retrain]
//! every_days = 7        # retrain a deployed model whose newest version is older than this (> 0; fractions allowed)
//! check_s = 3600        # how often the jobs worker looks
//! models = ["trend"]    # only these (default: every deployed model)
//! ```
//!
//! The age is the newest version's, whatever its state: a retrain the gate refused still
//! resets the clock, so a model that keeps failing its gate is retrained every `every_days`,
//! not at every check. The task id is made of the model and its newest version
//! (`retrain-<name>-after-v<version>`), and a task already in the store is not submitted again:
//! a failed scheduled retrain is there to be read and retried (`POST /tasks/{id}/retry`), not
//! resubmitted every `check_s`. Every jobs worker runs the schedule; two of them checking in
//! the same instant could both submit, which costs a duplicate version, no harm.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_audit::AuditStore;
use tradeflow_audit::query::models::ModelVersionRow;
use tradeflow_bus::Producer;
use tradeflow_core::job::{JobKind, JobRequest};

/// `[models]` of the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub retrain: Option<RetrainSchedule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainSchedule {
    pub every_days: f64,
    #[serde(default = "hour")]
    pub check_s: u64,
    #[serde(default)]
    pub models: Vec<String>,
}

fn hour() -> u64 {
    3600
}

/// Who the scheduled retrains are submitted by (their versions' `created_by`).
pub const SCHEDULER: &str = "scheduler";

impl ModelsConfig {
    /// Every problem, each with its key path.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let Some(r) = &self.retrain else { return };
        if !(r.every_days.is_finite() && r.every_days > 0.0 && r.every_days <= 3650.0) {
            problems
                .push(format!("models.retrain.every_days: expected more than 0, at most 3650, got {}", r.every_days));
        }
        if !(1..=86_400).contains(&r.check_s) {
            problems.push(format!("models.retrain.check_s: expected 1 to 86400, got {}", r.check_s));
        }
        for m in &r.models {
            if !tradeflow_models::job::valid_name(m) {
                problems.push(format!("models.retrain.models: {m:?} is not a model name (1-64 of A-Z a-z 0-9 _ . -)"));
            }
        }
    }
}

impl RetrainSchedule {
    fn every_ms(&self) -> i64 {
        (self.every_days * 86_400_000.0) as i64
    }
}

/// The models due for a retrain at `now`, each with its newest version: deployed, named by
/// the schedule (or all when it names none), newest version created at least `every_days` ago.
pub fn due(
    schedule: &RetrainSchedule,
    deployed: &[(String, i64)],
    versions: &[ModelVersionRow],
    now: i64,
) -> Vec<(String, i64)> {
    let mut newest: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for v in versions {
        let e = newest.entry(v.name.as_str()).or_insert((v.version, v.created_at));
        if v.version > e.0 {
            *e = (v.version, v.created_at);
        }
    }
    deployed
        .iter()
        .filter(|(name, _)| schedule.models.is_empty() || schedule.models.contains(name))
        .filter_map(|(name, _)| {
            let (version, created_at) = *newest.get(name.as_str())?;
            (now - created_at >= schedule.every_ms()).then(|| (name.clone(), version))
        })
        .collect()
}

pub fn task_id(name: &str, newest: i64) -> String {
    format!("retrain-{name}-after-v{newest}")
}

/// Submits the retrains due, every `check_s` until `stop` (the first check at once).
pub async fn run(
    store: std::sync::Arc<AuditStore>,
    producer: Producer,
    schedule: RetrainSchedule,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(schedule.check_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = every.tick() => {} }
        if let Err(e) = check(&store, &producer, &schedule).await {
            warn!(error = %format!("{e:#}"), "retrain schedule: the check failed; trying again at the next");
        }
    }
}

async fn check(store: &AuditStore, producer: &Producer, schedule: &RetrainSchedule) -> anyhow::Result<()> {
    let now = tradeflow_core::time::now_ms();
    let deployed = store.deployed_models().await?;
    if deployed.is_empty() {
        return Ok(());
    }
    let versions = store.model_versions(None).await?;
    for (name, newest) in due(schedule, &deployed, &versions, now) {
        let task_id = task_id(&name, newest);
        if store.job(&task_id).await?.is_some() {
            continue;
        }
        let request = JobRequest {
            task_id: task_id.clone(),
            kind: JobKind::Train,
            params: serde_json::json!({ "name": name, "retrain": true }).to_string(),
            submitted_by: SCHEDULER.into(),
            role: "admin".into(),
            submitted_at: now,
            submission: 1,
        };
        producer.publish("jobs.requests", &request.message_id(), &task_id, None, &request).await?;
        info!(model = %name, task = %task_id, "retrain schedule: submitted a retrain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, version: i64, created_at: i64) -> ModelVersionRow {
        ModelVersionRow {
            name: name.into(),
            version,
            family: "gbt".into(),
            parameters: "{}".into(),
            feature_schema: String::new(),
            feature_hash: String::new(),
            train_from: 0,
            train_to: 0,
            test_from: 0,
            test_to: 0,
            test_accuracy: None,
            metrics: "{}".into(),
            state: "trained".into(),
            created_by: "t".into(),
            created_at,
            deployed_at: None,
            deployed_by: None,
            forced: false,
            size_bytes: 0,
        }
    }

    #[test]
    fn deployed_models_whose_newest_version_is_old_enough() {
        let day = 86_400_000;
        let s = RetrainSchedule { every_days: 7.0, check_s: 60, models: Vec::new() };
        let versions = [row("a", 1, 0), row("a", 2, 5 * day), row("b", 1, 0), row("c", 1, 0)];
        let deployed = [("a".to_string(), 1), ("b".to_string(), 1)];
        // a's newest (v2) is 5 days old at day 10: not due; b's is 10 days old; c is not deployed.
        assert_eq!(due(&s, &deployed, &versions, 10 * day), [("b".to_string(), 1)]);
        assert_eq!(due(&s, &deployed, &versions, 12 * day), [("a".to_string(), 2), ("b".to_string(), 1)]);
        let only_a = RetrainSchedule { models: vec!["a".into()], ..s.clone() };
        assert_eq!(due(&only_a, &deployed, &versions, 12 * day), [("a".to_string(), 2)]);
        assert_eq!(task_id("a", 2), "retrain-a-after-v2");
    }

    #[test]
    fn every_bad_setting_is_named() {
        let c: ModelsConfig = toml::from_str("[retrain]\nevery_days = 0\ncheck_s = 0\nmodels = [\"ml:x\"]\n").unwrap();
        let mut p = Vec::new();
        c.validate(&mut p);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("models.retrain.every_days"), "{p:?}");
        assert!(toml::from_str::<ModelsConfig>("[retrain]\nevery_dayz = 1\n").is_err());
    }
}
