//! The store: a pool on SQLite or PostgreSQL, one schema, batched idempotent writes.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row as _, Type,
};

use crate::checkpoint::{Checkpointer, WRITER_BACKSTOP_PAGES};
use crate::error::{AuditError, redact_url};
use crate::rows::{Cell, FillRow, Kind, Row, Table, Val};
use crate::sqlite_writer::{SharedRows, SqliteWriter};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Name prefix of the threads on which SQLite runs (sqlx gives each connection one).
pub(crate) const SQLITE_THREAD: &str = "tf-sqlite-";
/// Page size of a SQLite file the store creates (an existing file keeps its own: in WAL mode
/// it cannot change). The default 4 KiB holds only two or three signal rows (about 1.4 KB
/// each, mostly JSON) and splits B-tree pages constantly; copying 3 million rows of a demo run
/// into a fresh file with this schema went at 125,000 rows/s with 32 KiB pages against 56,000
/// with 4 KiB (108,000 with 16 KiB, 123,000 with 64 KiB).
pub const SQLITE_PAGE_SIZE: u32 = 32_768;
/// Bind parameters one SQLite statement may carry (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
pub const SQLITE_MAX_PARAMS: usize = 32_766;
/// Bind parameters one PostgreSQL statement may carry (the protocol counts them in 16 bits).
pub const POSTGRES_MAX_PARAMS: usize = 65_535;

/// Rows per INSERT below a full chunk. A batch is cut into full chunks (as many rows as the
/// parameter limit allows) and then these sizes, so that each table has at most a handful of
/// distinct INSERT statements and the prepared-statement caches stay small and warm.
const LADDER: [usize; 5] = [256, 64, 16, 4, 1];

/// What one [`AuditStore::write`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows that were new.
    pub inserted: u64,
    /// Rows whose id was already stored (or repeated within the batch): rows given − inserted.
    pub duplicates: u64,
}

enum Backend {
    Sqlite(Pool<Sqlite>),
    Postgres(Pool<Postgres>),
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend `$store` uses.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// The audit store on SQLite or PostgreSQL.
///
/// Writes: [`write`](Self::write) stores any mix of rows in one transaction, grouped by table,
/// as multi-row `INSERT ... ON CONFLICT DO NOTHING`, so that writing the same rows twice
/// stores them once. (No conflict target: a row that repeats another unique key of its table,
/// such as a news story's normalised title, is skipped the same way; `id` is the only unique
/// key of the other tables.)
///
/// Non-finite floats (NaN, ±inf): in a nullable column they are stored as NULL (they read back
/// as `None`); in a NOT NULL column the whole batch is refused with
/// [`AuditError::NonFinite`] naming the table, the row id and the column, before anything is
/// written. The store never writes a value it cannot read back as a number.
pub struct AuditStore {
    backend: Backend,
    url: String,
    /// SQLite takes one writer at a time; the others would wait in its busy handler, which
    /// sleeps in steps of up to 100 ms on a connection thread. Queueing writers here instead
    /// hands the lock over the moment a transaction ends.
    sqlite_writer: tokio::sync::Mutex<()>,
    /// Checkpoints a SQLite file's log beside the writer (none in memory or on PostgreSQL).
    checkpointer: Option<Checkpointer>,
    /// Writes into a SQLite file (in memory and on PostgreSQL, the pool writes).
    file_writer: Option<SqliteWriter>,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore").field("url", &self.url).finish()
    }
}

impl AuditStore {
    /// Connects and applies the migrations.
    ///
    /// `url`: `sqlite://path/to/file.db` or `sqlite:path` (the file and its directory are
    /// created if missing, with [`SQLITE_PAGE_SIZE`] pages; WAL, synchronous=NORMAL,
    /// busy_timeout 5 s; the log is checkpointed on a connection of its own, see
    /// `checkpoint.rs`), `sqlite::memory:` (one
    /// connection, lives as long as the store), or `postgres://user:password@host:port/db`
    /// (`postgresql://` too).
    pub async fn connect(url: &str) -> Result<AuditStore, AuditError> {
        let shown = redact_url(url);
        let bad_url = |reason: String| AuditError::Url { url: shown.clone(), reason };
        let (mut checkpointer, mut file_writer) = (None, None);
        let backend = if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(url).map_err(|e| bad_url(e.to_string()))?;
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            if !url.contains("mode=") {
                options = options.create_if_missing(true);
            }
            options = options
                .page_size(SQLITE_PAGE_SIZE)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .thread_name(|id| format!("{SQLITE_THREAD}{id}"));
            let mut pool = SqlitePoolOptions::new().acquire_timeout(CONNECT_TIMEOUT).after_connect(|_, _| {
                Box::pin(async {
                    crate::priority::lower_threads_named(SQLITE_THREAD);
                    Ok(())
                })
            });
            if memory {
                // Every connection would see its own database otherwise, and the database
                // is gone when its last connection closes.
                pool = pool.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            } else {
                pool = pool.max_connections(4);
                if let Some(dir) = options.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| AuditError::Connect {
                        url: shown.clone(),
                        source: sqlx::Error::Io(std::io::Error::new(
                            e.kind(),
                            format!("create directory {}: {e}", dir.display()),
                        )),
                    })?;
                }
            }
            if !memory {
                probe::<sqlx::SqliteConnection>(&options, &shown).await?;
                options = options.pragma("wal_autocheckpoint", WRITER_BACKSTOP_PAGES.to_string());
            }
            let pool = pool
                .connect_with(options.clone())
                .await
                .map_err(|source| AuditError::Connect { url: shown.clone(), source })?;
            migrate_sqlite(&pool, &shown).await?;
            if !memory {
                let writer_thread = format!("{SQLITE_THREAD}writer");
                file_writer = Some(
                    SqliteWriter::start(options.get_filename(), writer_thread)
                        .await
                        .map_err(|e| AuditError::Writer { url: shown.clone(), source: e })?,
                );
                checkpointer = Some(
                    Checkpointer::start(&options)
                        .await
                        .map_err(|source| AuditError::Connect { url: shown.clone(), source })?,
                );
            }
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(|e| bad_url(e.to_string()))?;
            probe::<sqlx::PgConnection>(&options, &shown).await?;
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|source| AuditError::Connect { url: shown.clone(), source })?;
            MIGRATOR.run(&pool).await.map_err(|source| AuditError::Migrate { url: shown.clone(), source })?;
            Backend::Postgres(pool)
        } else {
            return Err(bad_url("expected sqlite:... or postgres://...".into()));
        };
        Ok(AuditStore { backend, url: shown, sqlite_writer: tokio::sync::Mutex::new(()), checkpointer, file_writer })
    }

    /// The url it is connected to, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (waits for them to be returned).
    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
        if let Some(w) = &self.file_writer {
            w.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }

    /// Stores `rows` in one transaction; rows whose id is already in their table are skipped.
    /// On any error nothing of the batch is stored.
    /// Takes rows by reference (a slice, a `Vec`, or rows gathered from several messages). A
    /// SQLite file store copies them once to hand them to its writer thread; the audit worker
    /// uses [`write_shared`](Self::write_shared), which does not.
    pub async fn write<'r>(&self, rows: impl IntoIterator<Item = &'r Row>) -> Result<WriteReport, AuditError> {
        if self.file_writer.is_some() {
            let rows: Vec<Row> = rows.into_iter().cloned().collect();
            return self.write_shared(&[Arc::new(rows)]).await;
        }
        self.write_through_pool(rows).await
    }

    /// [`write`](Self::write) for rows shared with their messages (each message's rows behind
    /// an `Arc`): one transaction for all of `batches`, no row copied.
    pub async fn write_shared(&self, batches: &[SharedRows]) -> Result<WriteReport, AuditError> {
        let Some(writer) = &self.file_writer else {
            return self.write_through_pool(batches.iter().flat_map(|b| b.iter())).await;
        };
        let given: Vec<&Row> = batches.iter().flat_map(|b| b.iter()).collect();
        if given.is_empty() {
            return Ok(WriteReport::default());
        }
        check_finite(&given)?;
        let given = given.len() as u64;
        let inserted = writer.write(batches.to_vec(), now_ms()).await?;
        if let Some(c) = &self.checkpointer {
            c.committed();
        }
        Ok(WriteReport { inserted, duplicates: given - inserted })
    }

    async fn write_through_pool<'r>(&self, rows: impl IntoIterator<Item = &'r Row>) -> Result<WriteReport, AuditError> {
        let rows: Vec<&Row> = rows.into_iter().collect();
        if rows.is_empty() {
            return Ok(WriteReport::default());
        }
        check_finite(&rows)?;
        let mut groups: Vec<Vec<&Row>> = vec![Vec::new(); Table::ALL.len()];
        for row in &rows {
            groups[row.table().index()].push(row);
        }
        // Same lock order in every transaction: concurrent writers of overlapping batches
        // wait for each other instead of deadlocking (PostgreSQL).
        for group in &mut groups {
            group.sort_by(|a, b| a.id().cmp(b.id())); // stable: of two rows with one id, the first given wins
        }
        let recorded_at = now_ms();
        let inserted = match &self.backend {
            Backend::Sqlite(pool) => {
                let _one_writer = self.sqlite_writer.lock().await;
                write_groups_sqlite(pool, &groups, recorded_at).await
            }
            Backend::Postgres(pool) => write_groups_postgres(pool, &groups, recorded_at).await,
        }?;
        Ok(WriteReport { inserted, duplicates: rows.len() as u64 - inserted })
    }

    /// Rows in `table`.
    pub async fn count(&self, table: Table) -> Result<i64, AuditError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        let rows = on_pool!(self, pool => fetch_cells(pool, &sql, &[], &[Kind::Int]).await)
            .map_err(|source| AuditError::Read { table: table.name(), source })?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Cell::Int(n)) => Ok(n),
            _ => Err(AuditError::Shape { table: table.name(), id: "COUNT(*)".into() }),
        }
    }

    /// Whether the database answers: `SELECT 1` on a pooled connection (no table is read), for
    /// readiness probes.
    pub async fn ping(&self) -> Result<(), AuditError> {
        on_pool!(self, pool => fetch_cells(pool, "SELECT 1", &[], &[Kind::Int]).await)
            .map(|_| ())
            .map_err(|source| AuditError::Read { table: "SELECT 1", source })
    }

    /// Every id in `table`, in byte order.
    pub async fn ids(&self, table: Table) -> Result<Vec<String>, AuditError> {
        let sql = on_pool!(self, pool => ids_sql(pool, table));
        let rows = on_pool!(self, pool => fetch_cells(pool, &sql, &[], &[Kind::Text]).await)
            .map_err(|source| AuditError::Read { table: table.name(), source })?;
        rows.into_iter()
            .map(|r| match r.into_iter().next() {
                Some(Cell::Text(id)) => Ok(id),
                _ => Err(AuditError::Shape { table: table.name(), id: "id".into() }),
            })
            .collect()
    }

    /// A page of `table`'s rows in id (byte) order: `limit` rows after the first `offset`.
    pub async fn rows(&self, table: Table, limit: i64, offset: i64) -> Result<Vec<Row>, AuditError> {
        let sql = on_pool!(self, pool => page_sql(pool, table));
        let binds = [Val::Int(limit.max(0)), Val::Int(offset.max(0))];
        let rows = on_pool!(self, pool => fetch_cells(pool, &sql, &binds, table.kinds()).await)
            .map_err(|source| AuditError::Read { table: table.name(), source })?;
        rows.into_iter().map(|cells| to_row(table, cells)).collect()
    }

    /// Every fill of `account`, ordered by (time, id).
    pub async fn fills(&self, account: &str) -> Result<Vec<FillRow>, AuditError> {
        let table = Table::Fill;
        let sql = on_pool!(self, pool => fills_sql(pool));
        let rows = on_pool!(self, pool => fetch_cells(pool, &sql, &[Val::Text(account)], table.kinds()).await)
            .map_err(|source| AuditError::Read { table: table.name(), source })?;
        rows.into_iter()
            .map(|cells| match to_row(table, cells)? {
                Row::Fill(f) => Ok(f),
                other => Err(AuditError::Shape { table: table.name(), id: other.id().to_string() }),
            })
            .collect()
    }
}

impl AuditStore {
    /// Runs a read query for the query modules. `sql` uses PostgreSQL's placeholders (`$1`,
    /// `$2`, ...); on SQLite they become `?1`, `?2`, ..., which SQLite binds by number, so one
    /// text serves both. `what` names the table (or view) in errors.
    /// This process's turn to write through the pool on SQLite (see `sqlite_writer`); nothing
    /// to wait for on PostgreSQL.
    pub(crate) async fn writer_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite(_) => Some(self.sqlite_writer.lock().await),
            Backend::Postgres(_) => None,
        }
    }

    pub(crate) async fn select(
        &self,
        what: &'static str,
        sql: &str,
        binds: &[Val<'_>],
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Cell>>, AuditError> {
        let sql = match self.backend {
            Backend::Sqlite(_) => sql.replace('$', "?"),
            Backend::Postgres(_) => sql.to_string(),
        };
        on_pool!(self, pool => fetch_cells(pool, &sql, binds, kinds).await)
            .map_err(|source| AuditError::Read { table: what, source })
    }
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens and closes one connection, so that a refused or failed connect is reported as it is
/// (a pool retries until its timeout and then only says that it timed out).
async fn probe<C: Connection>(options: &C::Options, shown: &str) -> Result<(), AuditError> {
    let failed = |source| AuditError::Connect { url: shown.to_string(), source };
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect_with(options)).await {
        Ok(Ok(conn)) => conn.close().await.map_err(failed),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(failed(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {CONNECT_TIMEOUT:?}"),
        )))),
    }
}

fn to_row(table: Table, cells: Vec<Cell>) -> Result<Row, AuditError> {
    let id = match cells.first() {
        Some(Cell::Text(id)) => id.clone(),
        _ => String::new(),
    };
    Row::from_cells(table, cells).ok_or(AuditError::Shape { table: table.name(), id })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Refuses the batch if a NOT NULL float column holds NaN or an infinity.
fn check_finite(rows: &[&Row]) -> Result<(), AuditError> {
    for row in rows {
        let mut bad = None;
        row.visit(&mut |column, v| {
            if let Val::Float(x) = v
                && !x.is_finite()
                && bad.is_none()
            {
                bad = Some((column, x));
            }
        });
        if let Some((column, value)) = bad {
            return Err(AuditError::NonFinite { table: row.table().name(), id: row.id().to_string(), column, value });
        }
    }
    Ok(())
}

/// The sizes of the INSERTs a group of `n` rows is cut into: full chunks of `max_rows`, then
/// the [`LADDER`] sizes.
pub(crate) fn chunk_sizes(mut n: usize, max_rows: usize) -> Vec<usize> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    while n >= max_rows {
        out.push(max_rows);
        n -= max_rows;
    }
    for size in LADDER {
        while size < max_rows && n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// What differs between the two databases.
trait Db: Database {
    const MAX_PARAMS: usize;
    /// Starts the write transaction. SQLite takes the write lock at once, so that concurrent
    /// writers wait on busy_timeout instead of failing to upgrade a read lock.
    const BEGIN: &'static str;
    /// Appended to `id` in ORDER BY so that both sort ids by bytes.
    const ID_ORDER: &'static str;
    fn rows_affected(result: &Self::QueryResult) -> u64;
    fn placeholder(n: usize) -> String;
}

impl Db for Sqlite {
    const MAX_PARAMS: usize = SQLITE_MAX_PARAMS;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const ID_ORDER: &'static str = "id";
    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
    fn placeholder(_: usize) -> String {
        "?".into()
    }
}

impl Db for Postgres {
    const MAX_PARAMS: usize = POSTGRES_MAX_PARAMS;
    const BEGIN: &'static str = "BEGIN";
    const ID_ORDER: &'static str = "id COLLATE \"C\"";
    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
    fn placeholder(n: usize) -> String {
        format!("${n}")
    }
}

fn quoted_columns(table: Table) -> String {
    table.columns().iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
}

fn ids_sql<DB: Db>(_: &Pool<DB>, table: Table) -> String {
    format!("SELECT id FROM {} ORDER BY {}", table.name(), DB::ID_ORDER)
}

fn page_sql<DB: Db>(_: &Pool<DB>, table: Table) -> String {
    format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT {} OFFSET {}",
        quoted_columns(table),
        table.name(),
        DB::ID_ORDER,
        DB::placeholder(1),
        DB::placeholder(2)
    )
}

fn fills_sql<DB: Db>(_: &Pool<DB>) -> String {
    format!(
        "SELECT {} FROM fills WHERE account = {} ORDER BY \"time\", {}",
        quoted_columns(Table::Fill),
        DB::placeholder(1),
        DB::ID_ORDER
    )
}

/// Defines `write_groups` for one concrete backend. (A function generic over the database does
/// not compile: the projection `DB::Arguments<'args>` is invariant, so a `QueryBuilder` of
/// borrowed binds cannot be executed inside the function that owns it.)
macro_rules! write_groups_for {
    ($name:ident, $db:ty) => {
        /// Inserts every group (rows of `Table::ALL[i]` in `groups[i]`) in one transaction;
        /// returns the rows inserted.
        async fn $name(pool: &Pool<$db>, groups: &[Vec<&Row>], recorded_at: i64) -> Result<u64, AuditError> {
            let mut tx = pool
                .begin_with(<$db as Db>::BEGIN)
                .await
                .map_err(|source| AuditError::Transaction { what: "begin", source: source.into() })?;
            let mut inserted = 0;
            for (table, rows) in Table::ALL.iter().zip(groups) {
                if rows.is_empty() {
                    continue;
                }
                let head = format!("INSERT INTO {} ({}, recorded_at) ", table.name(), quoted_columns(*table));
                let max_rows = <$db as Db>::MAX_PARAMS / (table.columns().len() + 1);
                let mut rest: &[&Row] = rows;
                for size in chunk_sizes(rows.len(), max_rows) {
                    let (chunk, tail) = rest.split_at(size);
                    rest = tail;
                    let mut query = QueryBuilder::<$db>::new(&head);
                    query.push_values(chunk.iter().copied(), |mut b, row| {
                        row.visit(&mut |_, v| {
                            match v {
                                Val::Int(x) => b.push_bind(x),
                                Val::Float(x) => b.push_bind(x),
                                Val::Text(x) => b.push_bind(x),
                                Val::OptFloat(x) => b.push_bind(x.filter(|x| x.is_finite())),
                                Val::OptText(x) => b.push_bind(x),
                            };
                        });
                        b.push_bind(recorded_at);
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    let result = query
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(|source| AuditError::Insert { table: table.name(), source: source.into() })?;
                    inserted += <$db as Db>::rows_affected(&result);
                }
            }
            tx.commit().await.map_err(|source| AuditError::Transaction { what: "commit", source: source.into() })?;
            Ok(inserted)
        }
    };
}

write_groups_for!(write_groups_sqlite, Sqlite);
write_groups_for!(write_groups_postgres, Postgres);

/// Runs a SELECT with `binds` and reads every row as cells of `kinds`.
async fn fetch_cells<DB>(
    pool: &Pool<DB>,
    sql: &str,
    binds: &[Val<'_>],
    kinds: &[Kind],
) -> Result<Vec<Vec<Cell>>, sqlx::Error>
where
    DB: Db,
    for<'q> i64: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
    for<'q> String: Type<DB> + Decode<'q, DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
    for<'q> Option<i64>: Type<DB> + Decode<'q, DB>,
    for<'q> Option<String>: Type<DB> + Decode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut query = sqlx::query::<DB>(sql);
    for v in binds {
        query = match *v {
            Val::Int(x) => query.bind(x),
            Val::Float(x) => query.bind(x),
            Val::Text(x) => query.bind(x),
            Val::OptFloat(x) => query.bind(x),
            Val::OptText(x) => query.bind(x),
        };
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    Ok(match kind {
                        Kind::Int => Cell::Int(row.try_get(i)?),
                        Kind::OptInt => Cell::OptInt(row.try_get(i)?),
                        Kind::Float => Cell::Float(row.try_get(i)?),
                        Kind::Text => Cell::Text(row.try_get(i)?),
                        Kind::OptFloat => Cell::OptFloat(row.try_get(i)?),
                        Kind::OptText => Cell::OptText(row.try_get(i)?),
                    })
                })
                .collect()
        })
        .collect()
}

/// SQLite has no advisory lock for migrations: when several audit writers start on one file
/// at once, all but one fail to create the tables (each migration is one transaction, rolled
/// back). A short wait and a second look then finds them applied.
async fn migrate_sqlite(pool: &Pool<Sqlite>, shown: &str) -> Result<(), AuditError> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(source) => return Err(AuditError::Migrate { url: shown.to_string(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_sizes;

    #[test]
    fn chunks_cover_the_batch_with_few_distinct_sizes() {
        for (n, max) in [(0, 10), (1, 10), (9, 10), (10, 10), (100_000, 1820), (5000, 3276), (1000, 1820), (7, 1)] {
            let sizes = chunk_sizes(n, max);
            assert_eq!(sizes.iter().sum::<usize>(), n, "n={n} max={max}");
            assert!(sizes.iter().all(|&s| s >= 1 && s <= max), "n={n} max={max}: {sizes:?}");
        }
        assert_eq!(chunk_sizes(1000, 1820), [256, 256, 256, 64, 64, 64, 16, 16, 4, 4]);
        assert_eq!(chunk_sizes(3700, 1820), [1820, 1820, 16, 16, 16, 4, 4, 4]);
    }
}
