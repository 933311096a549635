//! Copying SQLite's write-ahead log back into the database file beside the writer, not inside
//! its commits.
//!
//! In WAL mode a commit appends pages to `<db>-wal`; a checkpoint copies them into the
//! database file. By default the connection whose commit takes the log past 1,000 pages runs
//! that checkpoint itself, before its commit returns: a profile of the audit writer catching up
//! (300,000 candles, 2026-12-04) found 28 % of its SQLite thread's time there, all of it under
//! the single-writer lock, while the second core sat partly idle. Here a connection of its own
//! runs a PASSIVE checkpoint after commits (at most one pass per [`PAUSE`]); PASSIVE never
//! blocks the writer, and SQLite lets a checkpoint and a write transaction run at once.
//!
//! The writer still checkpoints itself once the log passes [`WRITER_BACKSTOP_PAGES`]: a log
//! only starts over from its beginning once a checkpoint has copied all of it, which a
//! background pass under a writer that never pauses may never do. The writer's own pass then
//! finds most pages already copied, and the log stays bounded (about that many pages plus one
//! transaction) whatever happens to the background connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Executor};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Log size (pages) at which a writer's commit checkpoints by itself: SQLite's
/// `wal_autocheckpoint` on the pool's connections (default 1,000). 8,192 pages of 32 KiB
/// ([`crate::store::SQLITE_PAGE_SIZE`]) are 256 MiB.
pub const WRITER_BACKSTOP_PAGES: u32 = 8_192;

/// Least time between two background passes, so that a burst of small commits costs one pass.
const PAUSE: Duration = Duration::from_millis(20);

/// A background task that checkpoints after commits; stopped when dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the checkpoint connection (same file and options as the pool's).
    pub(crate) async fn start(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = SqliteConnection::connect_with(options).await?;
        crate::priority::lower_threads_named(crate::store::SQLITE_THREAD);
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        let task = tokio::spawn(async move {
            let mut failing = false;
            loop {
                woken.notified().await;
                match conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                    Ok(_) => failing = false,
                    // Nothing is lost: the log keeps every page, and the writers' own
                    // checkpoint at WRITER_BACKSTOP_PAGES still copies it.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "audit store: background WAL checkpoint failed; the writer will checkpoint by itself");
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(PAUSE).await;
            }
        });
        Ok(Self { wake, task })
    }

    /// Called after each commit: asks for a pass (one more if a pass is running).
    pub(crate) fn committed(&self) {
        self.wake.notify_one();
    }

    /// Ends the task; its connection closes with it. (When the last connection to the file
    /// closes, SQLite checkpoints what is left and removes the log.)
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
