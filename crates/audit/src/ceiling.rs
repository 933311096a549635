//! SQLite's own insert rate for a store's rows: the ceiling the audit writer is judged against.
//!
//! The rows of an audit file (a bench run's, so the mix of tables is the pipeline's) are loaded
//! into memory, replicated under new ids with their times shifted (so that each series keeps
//! growing, as it would live), and inserted into a fresh file with the same schema and
//! secondary indexes through prepared single-row statements, in transactions of about
//! `tx_rows` rows, with the writer's settings (32 KiB pages, WAL, `synchronous = NORMAL`).
//! Nothing else runs: no decoding, no Redis, no batching logic. `scripts/sqlite-ceiling`
//! measures the same in C, without Rust, as a cross-check of this figure (docs/benchmarks.md).
//! Blocking: call it from a blocking thread.

use std::path::Path;
use std::time::Instant;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::error::{AuditError, DbError};
use crate::rows::Table;
use crate::store::SQLITE_PAGE_SIZE;

/// What [`sqlite_ceiling`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CeilingReport {
    /// Rows inserted (`replicas` × the rows loaded).
    pub rows: u64,
    /// Rows loaded from the source, before replication.
    pub source_rows: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

/// A table's loaded rows and its insert statement.
struct Loaded {
    table: Table,
    columns: Vec<String>,
    /// Which columns hold a time in ms (shifted per replica).
    is_time: Vec<bool>,
    rows: Vec<Vec<Value>>,
}

/// Milliseconds a replica's times move on: far beyond any real series, so replicas never meet.
const REPLICA_SHIFT_MS: i64 = 10_000_000_000;

fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> AuditError {
    move |e| AuditError::Transaction { what, source: DbError::Sqlite(e) }
}

/// Inserts the rows of the audit file `source` (at most `max_rows` of them, taken from every
/// table in proportion) `replicas` times into a fresh file in `scratch_dir`; removed afterwards.
pub fn sqlite_ceiling(
    source: &Path,
    scratch_dir: &Path,
    max_rows: usize,
    replicas: u32,
    tx_rows: usize,
) -> Result<CeilingReport, AuditError> {
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db("open the source"))?;
    let target = scratch_dir.join("ceiling.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    let mut dst = Connection::open(&target).map_err(db("open the copy"))?;
    dst.pragma_update(None, "page_size", SQLITE_PAGE_SIZE).map_err(db("set up the copy"))?;
    dst.pragma_update(None, "journal_mode", "WAL").map_err(db("set up the copy"))?;
    dst.pragma_update(None, "synchronous", "NORMAL").map_err(db("set up the copy"))?;

    let mut tables = Vec::new();
    let total: i64 = Table::ALL
        .iter()
        .map(|t| src.query_row(&format!("SELECT COUNT(*) FROM {}", t.name()), [], |r| r.get::<_, i64>(0)).unwrap_or(0))
        .sum();
    for &table in Table::ALL {
        // The schema as the source has it: the table, then its indexes.
        let mut schema = src
            .prepare("SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL ORDER BY type DESC")
            .map_err(db("read the schema"))?;
        let sqls: Vec<String> = schema
            .query_map([table.name()], |r| r.get(0))
            .map_err(db("read the schema"))?
            .collect::<Result<_, _>>()
            .map_err(db("read the schema"))?;
        if sqls.is_empty() {
            continue;
        }
        for sql in &sqls {
            dst.execute_batch(sql).map_err(db("create the copy's schema"))?;
        }
        let count: i64 = src
            .query_row(&format!("SELECT COUNT(*) FROM {}", table.name()), [], |r| r.get(0))
            .map_err(db("count rows"))?;
        if count == 0 {
            continue;
        }
        let take = if total as usize <= max_rows {
            count
        } else {
            (count as f64 * max_rows as f64 / total as f64).ceil() as i64
        };
        let mut select =
            src.prepare(&format!("SELECT * FROM {} ORDER BY rowid LIMIT ?1", table.name())).map_err(db("read rows"))?;
        let columns: Vec<String> = select.column_names().iter().map(|c| c.to_string()).collect();
        // Each row is replicated under a new id: only tables keyed by a text `id` can be.
        if columns.first().map(String::as_str) != Some("id") {
            continue;
        }
        let is_time = columns.iter().map(|c| c.contains("time") || c == "recorded_at" || c == "created_at").collect();
        let n = columns.len();
        let rows = select
            .query_map([take], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>())
            .map_err(db("read rows"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db("read rows"))?;
        tables.push(Loaded { table, columns, is_time, rows });
    }
    let source_rows: u64 = tables.iter().map(|t| t.rows.len() as u64).sum();
    let inserts: Vec<String> = tables
        .iter()
        .map(|t| {
            let marks = vec!["?"; t.columns.len()].join(",");
            format!("INSERT INTO {} VALUES ({marks}) ON CONFLICT (id) DO NOTHING", t.table.name())
        })
        .collect();

    // As many transactions per replica as it takes for ~tx_rows each; every transaction takes
    // its share of every table, as the writer's batches hold every kind of row.
    let per_replica = (source_rows as usize).div_ceil(tx_rows.max(1)).max(1);
    let started = Instant::now();
    let mut inserted = 0u64;
    let mut row = Vec::new();
    for k in 0..replicas {
        let shift = k as i64 * REPLICA_SHIFT_MS;
        for j in 0..per_replica {
            let tx = dst.transaction().map_err(db("begin"))?;
            for (t, sql) in tables.iter().zip(&inserts) {
                let mut insert = tx.prepare_cached(sql).map_err(db("prepare"))?;
                let (a, b) = (j * t.rows.len() / per_replica, (j + 1) * t.rows.len() / per_replica);
                for values in &t.rows[a..b] {
                    row.clear();
                    for (i, v) in values.iter().enumerate() {
                        row.push(match v {
                            Value::Text(id) if i == 0 => Value::Text(format!("r{k:03}:{id}")),
                            Value::Integer(ms) if t.is_time[i] => Value::Integer(ms + shift),
                            v => v.clone(),
                        });
                    }
                    // Counted as written, not as tried: a conflict would insert nothing.
                    inserted += insert
                        .execute(params_from_iter(row.iter()))
                        .map_err(|e| AuditError::Insert { table: t.table.name(), source: DbError::Sqlite(e) })?
                        as u64;
                }
            }
            tx.commit().map_err(db("commit"))?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(dst);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    Ok(CeilingReport { rows: inserted, source_rows, seconds, rows_per_sec: inserted as f64 / seconds.max(1e-9) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditStore;

    /// The copy holds every replica of every loaded row: the figure counts real inserts.
    #[tokio::test]
    async fn every_replica_of_every_row_is_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let store = AuditStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let rows = crate::bench::sample_signals("c/", 300);
        store.write(&rows).await.unwrap();
        store.close().await;
        let scratch = tempfile::tempdir().unwrap();
        let r = sqlite_ceiling(&path, scratch.path(), 1_000, 3, 100).unwrap();
        assert_eq!((r.source_rows, r.rows), (300, 900));
        assert!(r.rows_per_sec > 0.0);
        // A cap loads fewer rows, in proportion.
        let r = sqlite_ceiling(&path, scratch.path(), 100, 2, 50).unwrap();
        assert_eq!((r.source_rows, r.rows), (100, 200));
        assert!(!scratch.path().join("ceiling.db").exists(), "the copy is removed");
    }
}
