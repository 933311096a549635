//! The audit store: every event of the pipeline in SQL, on SQLite or PostgreSQL with one
//! schema (`migrations/`, applied at connect).
//!
//! Pure storage: plain row structs in ([`CandleRow`], [`SignalRow`], ... wrapped in [`Row`]),
//! rows out. [`AuditStore::write`] stores a batch in one transaction, idempotent on the
//! message id. Times are epoch milliseconds; JSON columns hold JSON text, stored verbatim.
//!
//! Non-finite floats: stored as NULL in nullable columns, refused (the whole batch, with the
//! table, id and column in the error) in NOT NULL ones.

mod bench;
mod ceiling;
mod checkpoint;
mod error;
pub mod mapping;
mod priority;
pub mod query;
mod rows;
mod scratch;
mod sqlite_writer;
mod store;
pub mod worker;

pub use bench::{BenchReport, bench_rows, bench_write, sample_fills, sample_signals};
pub use ceiling::{CeilingReport, sqlite_ceiling};
pub use checkpoint::WRITER_BACKSTOP_PAGES;
pub use error::{AuditError, DbError, redact_url};
pub use priority::{AUDIT_NICE, lower_current_thread};
pub use rows::{
    AuditLogRow, BalanceRow, CandleRow, DecisionRow, FillRow, JobEventRow, JobRow, NewsRow, OrderRow, PositionRow,
    RejectionRow, Row, SignalRow, SystemEventRow, Table, TradingLogRow,
};
pub use scratch::ScratchDatabase;
pub use sqlite_writer::SharedRows;
pub use store::{AuditStore, POSTGRES_MAX_PARAMS, SQLITE_MAX_PARAMS, SQLITE_PAGE_SIZE, WriteReport};
