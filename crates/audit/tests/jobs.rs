//! The job store's transitions (migration 0005) on SQLite and PostgreSQL: a job moves forward
//! only, a superseded attempt changes nothing, a retry starts it again, results are one per
//! job.

use tradeflow_audit::AuditStore;
use tradeflow_audit::query::jobs::JobFilter;
use tradeflow_core::job::{JobKind, JobRequest};
use tradeflow_testkit::postgres::TestPostgres;

fn request(task: &str, submission: u32, at: i64) -> JobRequest {
    JobRequest {
        task_id: task.into(),
        kind: JobKind::Backtest,
        params: r#"{"strategy":"sma_cross"}"#.into(),
        submitted_by: "ops".into(),
        role: "trader".into(),
        submitted_at: at,
        submission,
    }
}

async fn transitions(url: &str) {
    let store = AuditStore::connect(url).await.unwrap();
    let r = request("task-1", 1, 1_000);
    // First start inserts the row (the audit writer had not yet); a crash re-run counts on.
    assert_eq!(store.start_job(&r, "w1", 1_010).await.unwrap(), Some(1));
    store.job_progress("task-1", 1, 0.5, "candles", Some(3.0), 1_020).await.unwrap();
    let j = store.job("task-1").await.unwrap().unwrap();
    assert_eq!(
        (j.state.as_str(), j.progress, j.step.as_deref(), j.eta_s),
        ("running", Some(0.5), Some("candles"), Some(3.0))
    );
    assert_eq!(store.start_job(&r, "w2", 1_030).await.unwrap(), Some(2));
    // The first attempt's late end changes nothing; the second's counts.
    assert!(!store.finish_job("task-1", 1, "failed", Some("late"), None, 1_040).await.unwrap());
    assert!(store.finish_job("task-1", 2, "succeeded", None, Some(r#"{"candles":3}"#), 1_050).await.unwrap());
    let j = store.job("task-1").await.unwrap().unwrap();
    assert_eq!((j.state.as_str(), j.attempt, j.worker.as_deref(), j.progress), ("succeeded", 2, Some("w2"), Some(1.0)));
    assert_eq!((j.started_at, j.finished_at, j.error), (Some(1_030), Some(1_050), None));
    // A finished job does not start again from its old submission, but a retry starts it.
    assert_eq!(store.start_job(&r, "w1", 1_060).await.unwrap(), None);
    assert_eq!(store.start_job(&request("task-1", 2, 1_070), "w1", 1_080).await.unwrap(), Some(3));
    // A failed attempt back in the queue, then cancelled there by a cancel issued after its
    // start (an older cancel does nothing).
    assert!(store.finish_job("task-1", 3, "queued", Some("disk full"), None, 1_090).await.unwrap());
    assert!(!store.cancel_queued_job("task-1", 1_000, 1_095).await.unwrap());
    assert!(store.cancel_queued_job("task-1", 1_091, 1_100).await.unwrap());
    assert_eq!(store.job("task-1").await.unwrap().unwrap().state, "cancelled");
    assert!(!store.cancel_held_job("task-1", 1_110).await.unwrap(), "a cancelled job is over");
    // Results: one per job, replaced by a rerun.
    store.put_job_result("task-1", "backtest", r#"{"a":1}"#, Some("<html>"), 1_120).await.unwrap();
    store.put_job_result("task-1", "backtest", r#"{"a":2}"#, None, 1_130).await.unwrap();
    let res = store.job_result("task-1").await.unwrap().unwrap();
    assert_eq!((res.result.as_str(), res.report_html), (r#"{"a":2}"#, None));
    // Listing, counting, usage.
    store.start_job(&request("task-2", 1, 2_000), "w1", 2_010).await.unwrap();
    let (rows, total) = store.jobs(JobFilter { state: Some("running"), ..Default::default() }, 10, 0).await.unwrap();
    assert_eq!((rows.len(), total, rows[0].id.as_str()), (1, 1, "task-2"));
    let (_, total) = store.jobs(JobFilter { submitted_by: Some("ops"), ..Default::default() }, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    let usage = store.job_usage("ops", 1_500).await.unwrap();
    assert_eq!((usage.running, usage.queued, usage.submitted_since.clone()), (1, 0, vec![("backtest".to_string(), 1)]));
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 2);
    assert!(counts.iter().any(|c| c.state == "cancelled" && c.mean_run_s.is_some()));
    store.close().await;
}

#[tokio::test]
async fn sqlite_job_transitions() {
    let dir = tempfile::tempdir().unwrap();
    transitions(&format!("sqlite://{}", dir.path().join("jobs.db").display())).await;
}

#[tokio::test]
async fn postgres_job_transitions() {
    let pg = TestPostgres::start();
    transitions(&pg.url()).await;
}
