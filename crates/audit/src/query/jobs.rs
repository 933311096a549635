//! The job store: the `jobs` and `job_results` tables (migration 0005). The audit writer
//! inserts a job `queued` from its submission; the jobs worker that runs it moves it on with
//! the conditional updates below, so that two workers (a crashed one's successor, a late
//! cancel) never move a job backwards; the edge reads.

use serde::Serialize;
use tradeflow_core::job::JobRequest;

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Cell, Kind, Val};
use crate::store::AuditStore;

const COLUMNS: &str = "id, kind, state, attempt, submitted_by, role, submitted_at, params, started_at, finished_at, \
     updated_at, progress, step, eta_s, error, summary, worker, submission";
const KINDS: [Kind; 18] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::OptInt,
    Kind::OptInt,
    Kind::OptInt,
    Kind::OptFloat,
    Kind::OptText,
    Kind::OptFloat,
    Kind::OptText,
    Kind::OptText,
    Kind::OptText,
    Kind::OptInt,
];

/// One job as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub state: String,
    /// Runs started so far (a crashed run counts).
    pub attempt: i64,
    pub submitted_by: String,
    pub role: String,
    pub submitted_at: i64,
    /// The kind's parameters (JSON text).
    pub params: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub progress: Option<f64>,
    pub step: Option<String>,
    pub eta_s: Option<f64>,
    pub error: Option<String>,
    /// Result summary of a succeeded job (JSON text).
    pub summary: Option<String>,
    pub worker: Option<String>,
    pub submission: Option<i64>,
}

fn job_of(cells: Vec<Cell>) -> Result<JobRecord, AuditError> {
    let mut c = Cells::new("jobs", cells);
    Ok(JobRecord {
        id: c.text()?,
        kind: c.text()?,
        state: c.text()?,
        attempt: c.int()?,
        submitted_by: c.text()?,
        role: c.text()?,
        submitted_at: c.int()?,
        params: c.text()?,
        started_at: c.opt_int()?,
        finished_at: c.opt_int()?,
        updated_at: c.opt_int()?,
        progress: c.opt_float()?,
        step: c.opt_text()?,
        eta_s: c.opt_float()?,
        error: c.opt_text()?,
        summary: c.opt_text()?,
        worker: c.opt_text()?,
        submission: c.opt_int()?,
    })
}

/// Which jobs to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFilter<'a> {
    pub state: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub submitted_by: Option<&'a str>,
}

/// Counts per state and kind, for `GET /tasks/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
    /// Mean seconds from start to end of the finished ones; `None` when none has finished.
    pub mean_run_s: Option<f64>,
}

/// What a user has in the store now, for quotas.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobUsage {
    pub running: i64,
    pub queued: i64,
    /// Jobs submitted since the given time, per kind.
    pub submitted_since: Vec<(String, i64)>,
}

/// A job's stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub id: String,
    pub kind: String,
    pub result: String,
    pub report_html: Option<String>,
}

impl JobFilter<'_> {
    fn conditions<'b>(&'b self, binds: &mut Vec<Val<'b>>) -> String {
        let mut conditions = vec!["1 = 1".to_string()];
        for (column, value) in [("state", self.state), ("kind", self.kind), ("submitted_by", self.submitted_by)] {
            if let Some(v) = value {
                binds.push(Val::Text(v));
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        conditions.join(" AND ")
    }
}

impl AuditStore {
    /// One job, if it is stored.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, AuditError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let rows = self.select("jobs", &sql, &[Val::Text(id)], &KINDS).await?;
        rows.into_iter().next().map(job_of).transpose()
    }

    /// Jobs passing `filter`, newest submission first, and how many pass it in all.
    pub async fn jobs(
        &self,
        filter: JobFilter<'_>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<JobRecord>, i64), AuditError> {
        let mut binds = Vec::new();
        let conditions = filter.conditions(&mut binds);
        let count_sql = format!("SELECT COUNT(*) FROM jobs WHERE {conditions}");
        let total =
            match self.select("jobs", &count_sql, &binds, &[Kind::Int]).await?.pop().and_then(|r| r.into_iter().next())
            {
                Some(Cell::Int(n)) => n,
                _ => 0,
            };
        binds.push(Val::Int(limit.max(0)));
        binds.push(Val::Int(offset.max(0)));
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE {conditions} ORDER BY submitted_at DESC, id DESC LIMIT ${} OFFSET ${}",
            binds.len() - 1,
            binds.len()
        );
        let rows = self.select("jobs", &sql, &binds, &KINDS).await?;
        Ok((rows.into_iter().map(job_of).collect::<Result<_, _>>()?, total))
    }

    /// Counts by kind and state, with the mean run time of finished jobs.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>, AuditError> {
        // PostgreSQL's AVG of a BIGINT expression is NUMERIC: cast to the float both read.
        let sql = "SELECT kind, state, COUNT(*), CAST(AVG(CASE WHEN finished_at IS NOT NULL AND started_at IS NOT NULL \
                   THEN (finished_at - started_at) / 1000.0 END) AS DOUBLE PRECISION) FROM jobs GROUP BY kind, state \
                   ORDER BY kind, state";
        let rows = self.select("jobs", sql, &[], &[Kind::Text, Kind::Text, Kind::Int, Kind::OptFloat]).await?;
        rows.into_iter()
            .map(|cells| {
                let mut c = Cells::new("jobs", cells);
                Ok(JobCount { kind: c.text()?, state: c.text()?, count: c.int()?, mean_run_s: c.opt_float()? })
            })
            .collect()
    }

    /// `user`'s running and queued jobs, and what they submitted since `since` per kind.
    pub async fn job_usage(&self, user: &str, since: i64) -> Result<JobUsage, AuditError> {
        let sql = "SELECT state, kind, submitted_at FROM jobs WHERE submitted_by = $1 AND \
                   (state IN ('queued', 'running') OR submitted_at >= $2)";
        let rows =
            self.select("jobs", sql, &[Val::Text(user), Val::Int(since)], &[Kind::Text, Kind::Text, Kind::Int]).await?;
        let mut usage = JobUsage::default();
        for cells in rows {
            let mut c = Cells::new("jobs", cells);
            let (state, kind, at) = (c.text()?, c.text()?, c.int()?);
            match state.as_str() {
                "queued" => usage.queued += 1,
                "running" => usage.running += 1,
                _ => {}
            }
            if at >= since {
                match usage.submitted_since.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => usage.submitted_since.push((kind, 1)),
                }
            }
        }
        Ok(usage)
    }

    /// Runs a statement that changes rows, queued behind this process's other SQLite writers.
    async fn change(
        &self,
        what: &'static str,
        sql: &str,
        binds: &[Val<'_>],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Cell>>, AuditError> {
        let _turn = self.writer_turn().await;
        self.select(what, sql, binds, kinds).await
    }

    /// A worker starts (or, after a crash, restarts) `request`: the job becomes `running` under
    /// `worker` and its attempt count goes up by one. Returns the attempt, or `None` when the
    /// job must not run: cancelled or finished, unless this is a newer submission (a retry).
    /// The row is inserted when the audit writer has not stored the submission yet.
    pub async fn start_job(&self, request: &JobRequest, worker: &str, now: i64) -> Result<Option<i64>, AuditError> {
        let sql = "INSERT INTO jobs (id, kind, state, attempt, submitted_by, role, submitted_at, params, recorded_at, \
                   started_at, updated_at, worker, submission, progress) \
                   VALUES ($1, $2, 'running', 1, $3, $4, $5, $6, $7, $7, $7, $8, $9, 0) \
                   ON CONFLICT (id) DO UPDATE SET state = 'running', attempt = jobs.attempt + 1, started_at = $7, \
                   updated_at = $7, worker = $8, submission = $9, progress = 0, step = NULL, eta_s = NULL, \
                   error = NULL, summary = NULL, finished_at = NULL \
                   WHERE jobs.state IN ('queued', 'running') \
                   OR (jobs.state IN ('failed', 'cancelled', 'succeeded') AND COALESCE(jobs.submission, 1) < $9) \
                   RETURNING attempt";
        let submission = i64::from(request.submission);
        let binds = [
            Val::Text(&request.task_id),
            Val::Text(request.kind.name()),
            Val::Text(&request.submitted_by),
            Val::Text(&request.role),
            Val::Int(request.submitted_at),
            Val::Text(&request.params),
            Val::Int(now),
            Val::Text(worker),
            Val::Int(submission),
        ];
        let rows = self.change("jobs", sql, &binds, &[Kind::Int]).await?;
        Ok(match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Cell::Int(a)) => Some(a),
            _ => None,
        })
    }

    /// Progress of a running attempt (ignored once the attempt is over or superseded).
    pub async fn job_progress(
        &self,
        id: &str,
        attempt: i64,
        fraction: f64,
        step: &str,
        eta_s: Option<f64>,
        now: i64,
    ) -> Result<(), AuditError> {
        let sql = "UPDATE jobs SET progress = $1, step = $2, eta_s = $3, updated_at = $4 \
                   WHERE id = $5 AND attempt = $6 AND state = 'running' RETURNING attempt";
        let binds = [
            Val::Float(fraction),
            Val::Text(step),
            Val::OptFloat(eta_s.filter(|e| e.is_finite())),
            Val::Int(now),
            Val::Text(id),
            Val::Int(attempt),
        ];
        self.change("jobs", sql, &binds, &[Kind::Int]).await.map(|_| ())
    }

    /// Ends attempt `attempt` as `state` (`succeeded`, `failed`, `cancelled`, or `queued` for
    /// a failed attempt that will be retried). False when the attempt was no longer the
    /// job's running one (another worker took it over).
    pub async fn finish_job(
        &self,
        id: &str,
        attempt: i64,
        state: &str,
        error: Option<&str>,
        summary: Option<&str>,
        now: i64,
    ) -> Result<bool, AuditError> {
        let sql = "UPDATE jobs SET state = $1, error = $2, summary = $3, updated_at = $4, \
                   finished_at = CASE WHEN $1 = 'queued' THEN NULL ELSE $4 END, \
                   progress = CASE WHEN $1 = 'succeeded' THEN 1.0 ELSE progress END, eta_s = NULL \
                   WHERE id = $5 AND attempt = $6 AND state = 'running' RETURNING attempt";
        let binds = [
            Val::Text(state),
            Val::OptText(error),
            Val::OptText(summary),
            Val::Int(now),
            Val::Text(id),
            Val::Int(attempt),
        ];
        Ok(!self.change("jobs", sql, &binds, &[Kind::Int]).await?.is_empty())
    }

    /// A queued job is cancelled before it starts, by a cancel issued at `issued_at` (one
    /// older than the job's last start, i.e. meant for an earlier run, changes nothing). False
    /// when it was not queued.
    pub async fn cancel_queued_job(&self, id: &str, issued_at: i64, now: i64) -> Result<bool, AuditError> {
        let sql = "UPDATE jobs SET state = 'cancelled', error = 'cancelled before it started', updated_at = $1, \
                   finished_at = $1 WHERE id = $2 AND state = 'queued' AND (started_at IS NULL OR started_at <= $3) \
                   RETURNING attempt";
        Ok(!self
            .change("jobs", sql, &[Val::Int(now), Val::Text(id), Val::Int(issued_at)], &[Kind::Int])
            .await?
            .is_empty())
    }

    /// The worker holding a job's request cancels it before running it: queued, or `running`
    /// under an attempt whose worker died. False when it was already over.
    pub async fn cancel_held_job(&self, id: &str, now: i64) -> Result<bool, AuditError> {
        let sql = "UPDATE jobs SET state = 'cancelled', error = 'cancelled', updated_at = $1, finished_at = $1, \
                   eta_s = NULL WHERE id = $2 AND state IN ('queued', 'running') RETURNING attempt";
        Ok(!self.change("jobs", sql, &[Val::Int(now), Val::Text(id)], &[Kind::Int]).await?.is_empty())
    }

    /// Stores a job's result, replacing what an earlier attempt stored: one result per job.
    pub async fn put_job_result(
        &self,
        id: &str,
        kind: &str,
        result: &str,
        report_html: Option<&str>,
        now: i64,
    ) -> Result<(), AuditError> {
        let sql = "INSERT INTO job_results (id, kind, result, report_html, recorded_at) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (id) DO UPDATE SET kind = $2, result = $3, report_html = $4, recorded_at = $5 \
                   RETURNING recorded_at";
        let binds = [Val::Text(id), Val::Text(kind), Val::Text(result), Val::OptText(report_html), Val::Int(now)];
        self.change("job_results", sql, &binds, &[Kind::Int]).await.map(|_| ())
    }

    /// A job's result, if it has one.
    pub async fn job_result(&self, id: &str) -> Result<Option<JobResult>, AuditError> {
        let sql = "SELECT id, kind, result, report_html FROM job_results WHERE id = $1";
        let rows = self
            .select("job_results", sql, &[Val::Text(id)], &[Kind::Text, Kind::Text, Kind::Text, Kind::OptText])
            .await?;
        rows.into_iter()
            .next()
            .map(|cells| {
                let mut c = Cells::new("job_results", cells);
                Ok(JobResult { id: c.text()?, kind: c.text()?, result: c.text()?, report_html: c.opt_text()? })
            })
            .transpose()
    }
}
