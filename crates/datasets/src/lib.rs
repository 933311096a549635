//! Datasets: historical candles for backtests and training, kept as Parquet files, one per
//! (source, symbol, interval), under `<data-dir>/datasets/<source>/<SYMBOL>/<interval>.parquet`
//! (pandas, pyarrow and polars read them as they are; the columns are in [`mod@file`]).
//!
//! Every row that enters a dataset goes through the ingestion stage's own checks
//! (`tradeflow_ingest::IngestStage`, see [`admit`]): a valid bar, after the last one, a repeat
//! recognised. Files are replaced whole through a temporary file and a rename, and only grow
//! at their end. Gaps (bars missing between two present) and refused rows are reported,
//! never filled in.
//!
//! # API
//! The handle is [`Datasets`], over one directory (nothing is read until asked):
//! - [`Datasets::in_data_dir`]`(data_dir)` / [`Datasets::new`]`(dir)`;
//! - [`Datasets::list`]`() -> Result<Vec<DatasetInfo>, DatasetError>`: source, symbol,
//!   interval, spec, first/last bar, rows, gaps, missing bars, file size, path (Serialize);
//! - [`Datasets::resolve`]`(spec) -> Result<DatasetKey, DatasetError>`: `SYMBOL:INTERVAL`
//!   (Binance's when there is one, else the only source that has it) or
//!   `SOURCE:SYMBOL:INTERVAL`; an unknown one is an error listing what exists;
//! - [`Datasets::read`]`(spec, from: Option<i64>, to: Option<i64>) -> Result<Candles, DatasetError>`:
//!   the bars with open time in `[from, to)` (epoch ms), for backtests and training;
//! - [`Datasets::delete`]`(spec) -> Result<DatasetInfo, DatasetError>`;
//! - [`Datasets::import_csv`]`(csv, source, symbol, interval) -> Result<AppendSummary, DatasetError>`
//!   (all or nothing: any refused row fails it, naming the line and the column);
//! - [`Datasets::export_csv`]`(spec, csv, from, to) -> Result<ExportSummary, DatasetError>`;
//! - [`download()`]`(&Datasets, &BinanceConfig, &DownloadRequest, progress: FnMut(&DownloadProgress) + Send,
//!   &CancellationToken) -> Result<DownloadSummary, DatasetError>`: Binance spot klines
//!   through the ingest crate's REST client (base URL, retries and weight limits from the
//!   `BinanceConfig`), resumable, cancellable between pages, summarised (Serialize);
//!   [`DownloadRequest::from_api`]`(&serde_json::Value) -> Result<DownloadRequest, Vec<String>>`
//!   checks a job's `{symbol, interval, from, to}` without the network, naming each bad field.
//!
//! [`DatasetError::is_bad_input`] tells the caller's mistakes (4xx) from failures (5xx).

pub mod admit;
pub mod csv;
pub mod download;
pub mod error;
pub mod file;
pub mod gaps;
pub mod key;
pub mod params;
pub mod store;

pub use csv::ExportSummary;
pub use download::{DownloadProgress, DownloadRequest, DownloadSummary, download};
pub use error::{DatasetError, Refusal};
pub use gaps::Gap;
pub use key::{BINANCE, CSV, DatasetKey};
pub use params::DownloadParams;
pub use store::{AppendSummary, Candles, DatasetInfo, Datasets, WriteLock};
/// The REST client's configuration a download takes (base URL, timeouts, retries, weights).
pub use tradeflow_ingest::binance::BinanceConfig;
