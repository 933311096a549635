//! What can go wrong with a dataset, each case saying which file, row or field and what was
//! expected.

use std::path::PathBuf;

use serde::Serialize;
use tradeflow_core::time::iso_utc;
use tradeflow_ingest::binance::BinanceError;

/// A row that was not taken, and why (the ingestion stage's words).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// Where it was: `line 7` of a CSV file, `binance REST page 3`, ...
    pub at: String,
    /// Open time, when it could be read (epoch ms).
    pub open_time: Option<i64>,
    /// `malformed`, `invalid_bar`, `time_backwards`, `conflicting_duplicate`.
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset {spec:?}: {why}")]
    Spec { spec: String, why: String },
    #[error("{field} {value:?}: expected {expected}")]
    Name { field: &'static str, value: String, expected: &'static str },
    #[error("no dataset {spec} in {dir}; {}", available_list(.available))]
    Unknown { spec: String, dir: PathBuf, available: Vec<String> },
    #[error("dataset {spec} exists for several sources ({}); name one: SOURCE:{spec}", .sources.join(", "))]
    Ambiguous { spec: String, sources: Vec<String> },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A file in the datasets directory that is not what tradeflow writes.
    #[error("{path}: not a tradeflow dataset: {why}")]
    Format { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: tradeflow_core::candle_csv::CsvError,
    },
    /// Rows ingestion refuses; nothing was written.
    #[error("{what}: {} row(s) refused, nothing written: {}", .refusals.len(), refusal_list(.refusals))]
    Refused { what: String, refusals: Vec<Refusal> },
    #[error("{path} is being written by another process (its lock {lock} is held)")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error(
        "dataset {spec} starts at {} (UTC), after the requested start {}: a dataset only grows at its end; delete it first to fetch earlier bars",
        iso_utc(*.first), iso_utc(*.from)
    )]
    StartsAfter { spec: String, first: i64, from: i64 },
    #[error("time range: from {} must be before to {} (UTC)", iso_utc(*.from), iso_utc(*.to))]
    Range { from: i64, to: i64 },
    #[error(transparent)]
    Binance(#[from] BinanceError),
    #[error("dataset writer task: {0}")]
    Task(String),
}

fn available_list(available: &[String]) -> String {
    if available.is_empty() { "there is none yet".to_string() } else { format!("there are: {}", available.join(", ")) }
}

/// The first ten refusals, one per line.
fn refusal_list(refusals: &[Refusal]) -> String {
    let mut text: Vec<String> = refusals.iter().take(10).map(|r| format!("\n  {}: {}", r.at, r.reason)).collect();
    if refusals.len() > 10 {
        text.push(format!("\n  ... and {} more", refusals.len() - 10));
    }
    text.concat()
}

impl DatasetError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DatasetError::Io { action, path, source }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>) -> impl FnOnce(parquet::errors::ParquetError) -> Self {
        let path = path.into();
        move |source| DatasetError::Parquet { path, source }
    }

    /// The caller's mistake (a bad name, an unknown dataset, refused rows, a bad range), as
    /// opposed to a broken file or a failed download: what an API answers with a 4xx.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Spec { .. }
                | Self::Name { .. }
                | Self::Unknown { .. }
                | Self::Ambiguous { .. }
                | Self::Csv { .. }
                | Self::Refused { .. }
                | Self::StartsAfter { .. }
                | Self::Range { .. }
        )
    }
}
