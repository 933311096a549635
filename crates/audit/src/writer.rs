//! The one SQLite writer: a thread of its own that commits the batches of every caller, several
//! at a time.
//!
//! SQLite takes one writer at a time, so the audit worker's partitions (one task per stream
//! partition) queue for it. When they queued on an async lock, a transaction's round trips to
//! its connection thread (BEGIN, each INSERT, COMMIT) each waited for a runtime thread that was
//! busy decoding the next batches, and SQLite sat idle about two thirds of the time while the
//! pipeline's audit group fell behind. Here the round trips run on a dedicated thread with its
//! own single-threaded runtime, nothing else to poll, and every batch that queued meanwhile is
//! written in the same transaction (group commit: one COMMIT, one WAL sync point, for all).
//!
//! Each batch keeps its own result: its rows are inserted by statements of their own, so the
//! rows it inserted are counted exactly; if the shared transaction fails, every batch of it is
//! written again in a transaction of its own, so that one batch's error is that batch's alone.

use sqlx::{Pool, Sqlite};
use tokio::sync::{mpsc, oneshot};

use crate::error::AuditError;
use crate::rows::Row;

/// A transaction takes batches until it holds this many rows (and never waits for more).
const GROUP_ROWS: usize = 20_000;

/// Rows of one caller's batch, by table (`Table::ALL` order), sorted by id.
pub(crate) type Groups = Vec<Vec<Row>>;

struct Job {
    groups: Groups,
    done: oneshot::Sender<Result<u64, AuditError>>,
}

impl Job {
    fn rows(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }
}

/// Hands batches to the writer thread. Dropping it ends the thread once the batches queued
/// before are written.
pub(crate) struct SqliteWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl SqliteWriter {
    /// Starts the writer thread on `pool`'s connections.
    pub(crate) fn start(pool: Pool<Sqlite>) -> Result<SqliteWriter, AuditError> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AuditError::Writer(format!("runtime: {e}")))?;
        std::thread::Builder::new()
            .name(format!("{}writer", crate::store::SQLITE_THREAD))
            .spawn(move || {
                crate::priority::lower_this_thread();
                runtime.block_on(run(pool, queue));
            })
            .map_err(|e| AuditError::Writer(format!("thread: {e}")))?;
        Ok(SqliteWriter { jobs })
    }

    /// Writes `groups` (in a transaction it may share with other batches); the rows inserted.
    pub(crate) async fn write(&self, groups: Groups) -> Result<u64, AuditError> {
        let (done, result) = oneshot::channel();
        self.jobs.send(Job { groups, done }).map_err(|_| AuditError::Writer("the writer thread has stopped".into()))?;
        result.await.map_err(|_| AuditError::Writer("the writer thread stopped before writing the batch".into()))?
    }
}

async fn run(pool: Pool<Sqlite>, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut rows = first.rows();
        let mut jobs = vec![first];
        while rows < GROUP_ROWS {
            let Ok(job) = queue.try_recv() else { break };
            rows += job.rows();
            jobs.push(job);
        }
        let recorded_at = crate::store::now_ms();
        let batches: Vec<&[Vec<Row>]> = jobs.iter().map(|j| j.groups.as_slice()).collect();
        match crate::store::write_groups_sqlite(&pool, &batches, recorded_at).await {
            Ok(inserted) => {
                for (job, n) in jobs.into_iter().zip(inserted) {
                    let _ = job.done.send(Ok(n));
                }
            }
            Err(e) if jobs.len() == 1 => {
                let _ = jobs.pop().map(|job| job.done.send(Err(e)));
            }
            Err(e) => {
                tracing::debug!(batches = jobs.len(), error = %e, "shared audit transaction failed; writing its batches one by one");
                for job in jobs {
                    let result = crate::store::write_groups_sqlite(&pool, &[job.groups.as_slice()], recorded_at)
                        .await
                        .map(|n| n.first().copied().unwrap_or(0));
                    let _ = job.done.send(result);
                }
            }
        }
    }
}
