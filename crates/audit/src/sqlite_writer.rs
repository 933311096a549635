//! Writes into a SQLite file on a thread of its own, through rusqlite: one prepared single-row
//! `INSERT ... ON CONFLICT DO NOTHING` per table, bound straight from the rows.
//!
//! Why not sqlx, which the store still uses for everything else (migrations, reads,
//! PostgreSQL, in-memory stores): sqlx runs SQLite on a thread per connection, so every bound
//! string is first copied into an owned value for the trip, and a batch becomes multi-row
//! statements rebuilt as SQL text for every chunk. A profile of the audit writer catching up
//! (300,000 candles, 2026-12-04) put a quarter of its async threads' time into building those
//! statements and copying their arguments, on top of SQLite's own work. Here the rows travel
//! to the thread behind an `Arc` (the deliveries keep them, nothing is copied) and SQLite reads
//! each value where it lies.
//!
//! One thread serializes the writes of its store; writers in other processes on the same file
//! wait for the lock in SQLite's busy handler (busy_timeout 5 s), as before.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::checkpoint::WRITER_BACKSTOP_PAGES;
use crate::error::{AuditError, DbError};
use crate::rows::{Row, Table, Val};

/// Rows as the audit worker holds them: one message's rows, shared with its delivery.
pub type SharedRows = Arc<Vec<Row>>;

enum Command {
    Write { batches: Vec<SharedRows>, recorded_at: i64, reply: oneshot::Sender<Result<u64, AuditError>> },
    Close { reply: oneshot::Sender<()> },
}

/// The writer thread's handle. Dropping it lets the thread end after its current transaction.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    commands: std::sync::Mutex<Option<mpsc::Sender<Command>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Write { .. } => "Write",
            Command::Close { .. } => "Close",
        })
    }
}

impl SqliteWriter {
    /// Opens `path` (an existing, migrated database in WAL mode) on a new thread named
    /// `thread_name`; returns once the connection is open.
    pub(crate) async fn start(path: &Path, thread_name: String) -> Result<Self, DbError> {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready, opened) = oneshot::channel();
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                crate::priority::lower_threads_named(crate::store::SQLITE_THREAD);
                let conn = match open(&owned) {
                    Ok(conn) => {
                        let _ = ready.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                run(conn, inbox);
            })
            .map_err(|e| DbError::Writer(format!("start the SQLite writer thread: {e}")))?;
        opened.await.map_err(|_| DbError::Writer("the SQLite writer thread ended while opening".into()))??;
        Ok(Self { commands: std::sync::Mutex::new(Some(commands)) })
    }

    /// Stores every row of `batches` in one transaction; returns the rows inserted.
    pub(crate) async fn write(&self, batches: Vec<SharedRows>, recorded_at: i64) -> Result<u64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write { batches, recorded_at, reply })?;
        answer.await.map_err(|_| gone("begin"))?
    }

    /// Closes the connection; later writes fail.
    pub(crate) async fn close(&self) {
        let (reply, closed) = oneshot::channel();
        if self.send(Command::Close { reply }).is_ok() {
            let _ = closed.await;
        }
        self.commands.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn send(&self, command: Command) -> Result<(), AuditError> {
        let guard = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(command).map_err(|_| gone("begin")),
            None => Err(gone("begin")),
        }
    }
}

fn gone(what: &'static str) -> AuditError {
    AuditError::Transaction { what, source: DbError::Writer("the SQLite writer is closed".into()) }
}

fn open(path: &Path) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // journal_mode is the file's (WAL, set when the store created it); these two are the
    // connection's own, as on the pool's connections.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_BACKSTOP_PAGES)?;
    conn.set_prepared_statement_cache_capacity(Table::ALL.len() + 4);
    Ok(conn)
}

/// The thread's loop: one transaction per write, until closed or every handle is dropped.
fn run(mut conn: Connection, inbox: mpsc::Receiver<Command>) {
    let inserts: Vec<String> = Table::ALL.iter().map(|t| insert_sql(*t)).collect();
    while let Ok(command) = inbox.recv() {
        match command {
            Command::Write { batches, recorded_at, reply } => {
                // A panic must not take the thread (and with it every later write) down: the
                // transaction rolls back as it unwinds and this batch is retried like any
                // failed one.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    write(&mut conn, &inserts, &batches, recorded_at)
                }))
                .unwrap_or_else(|_| {
                    Err(AuditError::Transaction {
                        what: "write",
                        source: DbError::Writer("the SQLite writer panicked; the batch was rolled back".into()),
                    })
                });
                let _ = reply.send(result);
            }
            Command::Close { reply } => {
                drop(conn);
                let _ = reply.send(());
                return;
            }
        }
    }
}

fn insert_sql(table: Table) -> String {
    let columns: Vec<String> = table.columns().iter().map(|c| format!("\"{c}\"")).collect();
    let marks = vec!["?"; table.columns().len() + 1].join(", ");
    format!(
        "INSERT INTO {} ({}, recorded_at) VALUES ({marks}) ON CONFLICT DO NOTHING",
        table.name(),
        columns.join(", ")
    )
}

/// Table by table (each with its cached statement), rows in the order given: of two rows
/// with one id, the first is kept.
fn write(
    conn: &mut Connection,
    inserts: &[String],
    batches: &[SharedRows],
    recorded_at: i64,
) -> Result<u64, AuditError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| AuditError::Transaction { what: "begin", source: e.into() })?;
    let mut present = [false; Table::ALL.len()];
    for row in batches.iter().flat_map(|b| b.iter()) {
        present[row.table().index()] = true;
    }
    let mut inserted = 0u64;
    for table in Table::ALL.iter().filter(|t| present[t.index()]) {
        let failed = |e: rusqlite::Error| AuditError::Insert { table: table.name(), source: e.into() };
        let mut stmt = tx.prepare_cached(&inserts[table.index()]).map_err(failed)?;
        for row in batches.iter().flat_map(|b| b.iter()).filter(|r| r.table() == *table) {
            let mut i = 0;
            let mut bound = Ok(());
            row.visit(&mut |_, v| {
                i += 1;
                let r = match v {
                    Val::Int(x) => stmt.raw_bind_parameter(i, x),
                    Val::Float(x) => stmt.raw_bind_parameter(i, x),
                    Val::Text(x) => stmt.raw_bind_parameter(i, x),
                    Val::OptFloat(x) => stmt.raw_bind_parameter(i, x.filter(|x| x.is_finite())),
                    Val::OptText(x) => stmt.raw_bind_parameter(i, x),
                };
                if bound.is_ok() {
                    bound = r;
                }
            });
            bound.map_err(failed)?;
            stmt.raw_bind_parameter(i + 1, recorded_at).map_err(failed)?;
            inserted += stmt.raw_execute().map_err(failed)? as u64;
        }
    }
    tx.commit().map_err(|e| AuditError::Transaction { what: "commit", source: e.into() })?;
    Ok(inserted)
}
