//! Long work as jobs on the bus: what a submission says (`jobs.requests`) and what a job did
//! (`jobs.events`). The parameters of each kind are the libraries' own (a backtest's are the
//! backtester's), carried as JSON text so this crate need not know them.

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::payload::Payload;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backtest,
    Hyperopt,
    Download,
    Train,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [JobKind::Backtest, JobKind::Hyperopt, JobKind::Download, JobKind::Train];
    pub const NAMES: &'static str = "backtest, hyperopt, download, train";

    pub fn name(self) -> &'static str {
        match self {
            Self::Backtest => "backtest",
            Self::Hyperopt => "hyperopt",
            Self::Download => "download",
            Self::Train => "train",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Where a job is: `queued → running → succeeded | failed | cancelled`. A crashed attempt
/// goes back to `running` under another worker (attempt + 1); a retry of a failed or
/// cancelled job queues it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];
    pub const NAMES: &'static str = "queued, running, succeeded, failed, cancelled";

    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Nothing more happens to the job unless someone retries it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A submission (`jobs.requests`, key = the task id). A retry is a second request for the
/// same task (`submission` 2, 3, …): its message id differs, the task's id and results do not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// `task-<16 hex digits from the OS generator>`.
    pub task_id: String,
    pub kind: JobKind,
    /// The kind's parameters as JSON (validated by the submitter against the kind's type).
    pub params: String,
    pub submitted_by: String,
    /// The submitter's role (`viewer`, `trader`, `admin`; `cli` for the command line).
    pub role: String,
    pub submitted_at: i64,
    /// 1 for the first submission, n for the (n-1)th retry.
    pub submission: u32,
}

impl JobRequest {
    /// A new task id: 64 bits from the operating system's generator (they are handed out by
    /// the API, so they must not be guessable), else the time, the process and a counter.
    pub fn new_task_id(now_ms: i64) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = getrandom::u64().unwrap_or_else(|_| {
            let c = COUNTER.fetch_add(1, Ordering::Relaxed);
            (now_ms as u64 ^ (std::process::id() as u64) << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c
        });
        format!("task-{n:016x}")
    }

    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.task_id, "submit", &self.submission.to_string()])
    }
}

impl Payload for JobRequest {
    const KIND: &'static str = "job_request";
    const VERSION: u16 = 1;
}

/// How far a running job is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// 0 to 1.
    pub fraction: f64,
    /// What it is doing (`trials`, `out of sample`, `candles`, `pages`).
    pub step: String,
    /// Seconds left at the pace so far; `None` before there is a pace.
    pub eta_s: Option<f64>,
}

/// A state change or a progress report of one attempt of a job (`jobs.events`, key = the task
/// id), for the WebSocket `tasks` channel and anyone watching. The store holds the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub task_id: String,
    pub kind: JobKind,
    pub attempt: u32,
    pub state: JobState,
    /// Set on progress reports of a running job.
    pub progress: Option<JobProgress>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// The result summary of a finished job (JSON).
    pub summary: Option<String>,
    pub worker: String,
    pub at: i64,
    /// Counts the attempt's events, so that each has its own id.
    pub seq: u64,
}

impl JobEvent {
    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.task_id, &self.attempt.to_string(), &self.seq.to_string()])
    }

    /// The WebSocket event name: `task_progress`, `task_completed`, `task_failed`,
    /// `task_cancelled`, `task_started`, `task_queued`.
    pub fn event_name(&self) -> &'static str {
        match self.state {
            JobState::Running if self.progress.is_some() => "task_progress",
            JobState::Running => "task_started",
            JobState::Queued => "task_queued",
            JobState::Succeeded => "task_completed",
            JobState::Failed => "task_failed",
            JobState::Cancelled => "task_cancelled",
        }
    }
}

impl Payload for JobEvent {
    const KIND: &'static str = "job_event";
    const VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.name()), Some(k));
            assert!(JobKind::NAMES.contains(k.name()));
        }
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.name()), Some(s));
            assert!(JobState::NAMES.contains(s.name()));
        }
        assert_eq!(JobKind::parse("bogus"), None);
    }

    #[test]
    fn task_ids_differ_and_retries_have_their_own_message_id() {
        let a = JobRequest::new_task_id(1);
        let b = JobRequest::new_task_id(1);
        assert_ne!(a, b);
        assert!(a.starts_with("task-") && a.len() == 21);
        let mut r = JobRequest {
            task_id: a,
            kind: JobKind::Backtest,
            params: "{}".into(),
            submitted_by: "u".into(),
            role: "trader".into(),
            submitted_at: 1,
            submission: 1,
        };
        let first = r.message_id();
        r.submission = 2;
        assert_ne!(first, r.message_id());
    }
}
