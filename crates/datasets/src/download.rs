//! Binance spot klines into a dataset, through the ingest crate's REST client and pager
//! (retries, `Retry-After`, request-weight pacing, closed bars only), resumable.
//!
//! Resuming needs no state of its own: the dataset file is the state. A download starts one
//! interval after the file's last bar, so a download that was cancelled, failed or killed
//! continues where its file ends when run again. What it fetched is written to the file
//! (whole, atomically) at least every second or so, and at the end: a killed download loses at
//! most the pages since its last write, and those are fetched again. The write interval grows
//! with the file (ten times the last write's duration) so that rewriting a long file never
//! takes more than about a tenth of the time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tradeflow_core::market::{Bar, Interval};
use tradeflow_core::time::now_ms;
use tradeflow_ingest::binance::{BinanceConfig, BinanceSeries, BinanceStats, PageItem, RestClient};

use crate::admit::Gate;
use crate::error::{DatasetError, Refusal};
use crate::file;
use crate::gaps::{self, Gap};
use crate::key::{BINANCE, DatasetKey};
use crate::store::Datasets;

/// What to download: the closed klines of `symbol` at `interval` with open time in
/// `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DownloadRequest {
    /// Binance's symbol, any case (`BTCUSDT`); stored upper case.
    pub symbol: String,
    pub interval: Interval,
    /// Epoch ms (UTC).
    pub from: i64,
    /// Epoch ms (UTC), exclusive; `None`: up to now (the bar still forming is left out).
    pub to: Option<i64>,
}

impl DownloadRequest {
    /// A request from a job's JSON parameters, `{"symbol": "BTCUSDT", "interval": "1h",
    /// "from": "2024-01-01" | <epoch ms>, "to": ... (optional)}`, checked without the network:
    /// every problem names its field. (A job's parameters are data; the download itself still
    /// finds out whether Binance knows the symbol.)
    pub fn from_api(json: &serde_json::Value) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let Some(object) = json.as_object() else {
            return Err(vec![format!("params: expected an object {{symbol, interval, from, to}}, got {json}")]);
        };
        for key in object.keys() {
            if !["symbol", "interval", "from", "to"].contains(&key.as_str()) {
                problems.push(format!("{key}: unknown field; expected symbol, interval, from, to"));
            }
        }
        let text = |k: &str| object.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let symbol = text("symbol").unwrap_or_default();
        let series = BinanceSeries::new(&symbol, Interval::M1);
        let s = &series.symbol;
        if s.is_empty() || s.len() > 20 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!("symbol: {symbol:?} is not a Binance symbol (1 to 20 letters and digits)"));
        }
        let interval = match text("interval").map(|i| i.parse::<Interval>()) {
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => {
                problems.push(format!("interval: {e}"));
                None
            }
            None => {
                problems.push("interval: missing; expected one of 1m, 3m, ..., 1w".into());
                None
            }
        };
        let time = |k: &str, problems: &mut Vec<String>| -> Option<i64> {
            let parsed = match object.get(k)? {
                serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not integer milliseconds")),
                serde_json::Value::String(s) => tradeflow_core::time::parse_day_or_ms(s),
                other => Err(format!("{other}: expected YYYY-MM-DD (UTC) or epoch milliseconds")),
            };
            parsed.map_err(|e| problems.push(format!("{k}: {e}"))).ok()
        };
        let from = time("from", &mut problems);
        if !object.contains_key("from") {
            problems.push("from: missing; expected YYYY-MM-DD (UTC) or epoch milliseconds".into());
        }
        let to = time("to", &mut problems);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            problems.push(format!("to: {t} is not after from {f}"));
        }
        match (interval, from) {
            (Some(interval), Some(from)) if problems.is_empty() => {
                Ok(DownloadRequest { symbol: series.symbol, interval, from, to })
            }
            _ => Err(problems),
        }
    }
}

/// Where a download stands, handed to the progress callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadProgress {
    /// Share of the time range covered, 0 to 1.
    pub fraction: f64,
    /// Rows fetched and taken so far by this run.
    pub rows: u64,
    pub pages: u64,
    /// Open time up to which the range is covered (exclusive).
    pub position: i64,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownloadSummary {
    pub spec: String,
    pub path: std::path::PathBuf,
    pub from: i64,
    pub to: i64,
    /// Open time this run started fetching at, after the bars the file already had (`null`:
    /// the file was new or empty).
    pub resumed_at: Option<i64>,
    pub rows_added: u64,
    /// Rows in the dataset now.
    pub rows_total: u64,
    pub pages: u64,
    /// Klines refused (unreadable or not a valid bar), as ingestion refuses them; each leaves
    /// a gap.
    pub refused: Vec<Refusal>,
    /// Gaps of the dataset within `[from, to)`.
    pub gaps: Vec<Gap>,
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    pub seconds: f64,
    /// `rows_added / seconds`; `null` when this run added no row (nothing to measure).
    pub rows_per_second: Option<f64>,
    /// Whether `cancel` stopped it; what it had fetched is in the file.
    pub cancelled: bool,
    /// Binance REST requests sent (retries included).
    pub requests: u64,
}

/// Least time between two progress calls.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Least time between two writes of the file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Downloads `request` into its dataset (`binance:<SYMBOL>:<interval>`) from the REST API at
/// `binance.rest_url`, with `binance`'s timeouts, retries, weight limits and page size.
///
/// Resumable (see the module's notes). `progress` is called at most four times a second and
/// once at the end; `cancel` is checked before every page and interrupts a request in flight:
/// the download then writes what it has and returns with `cancelled: true`. A dataset that
/// already starts after `request.from` is an error when Binance has bars before it (a dataset
/// only grows at its end); when it has none (the symbol was listed later) the download goes on.
pub async fn download<F>(
    datasets: &Datasets,
    binance: &BinanceConfig,
    request: &DownloadRequest,
    mut progress: F,
    cancel: &CancellationToken,
) -> Result<DownloadSummary, DatasetError>
where
    F: FnMut(&DownloadProgress) + Send,
{
    let started = Instant::now();
    let series = BinanceSeries::new(&request.symbol, request.interval);
    let key = DatasetKey::new(BINANCE, &series.symbol, request.interval)?;
    let iv = request.interval.millis();
    let to = request.to.unwrap_or_else(now_ms);
    if request.from >= to {
        return Err(DatasetError::Range { from: request.from, to });
    }
    let _lock = datasets.lock(&key)?;
    let stats = Arc::new(BinanceStats::default());
    let client = RestClient::new(binance, stats.clone())?;
    let mut all = {
        let (datasets, key) = (datasets.clone(), key.clone());
        blocking(move || datasets.stored(&key)).await??
    };
    if let Some(first) = all.first().map(Bar::open_time)
        && request.from < first
    {
        // Only an error if Binance has bars there: a symbol listed after `from` starts later.
        let mut before = client.pages(&series.symbol, request.interval, request.from, first - 1);
        let earlier = before.next_page().await?.unwrap_or_default();
        if earlier.iter().any(|i| matches!(i, PageItem::Bar(_))) {
            return Err(DatasetError::StartsAfter { spec: key.spec(), first, from: request.from });
        }
    }
    let resumed_at = all.last().map(|b| (b.open_time() + iv).max(request.from));
    let start = resumed_at.unwrap_or(request.from);
    if resumed_at.is_some() {
        info!(dataset = %key, from = start, "resuming after the dataset's last bar");
    }
    let end = to.min(now_ms()).max(start + 1);
    let fraction = |position: i64| ((position - start) as f64 / (end - start) as f64).clamp(0.0, 1.0);

    let last: Vec<Bar> = all.last().copied().into_iter().collect();
    let mut gate = Gate::new(&key, &last);
    let mut refused: Vec<Refusal> = Vec::new();
    let mut pager = client.pages(&series.symbol, request.interval, start, to - 1);
    let (mut pages, mut added, mut position) = (0u64, 0u64, start);
    let mut cancelled = false;
    let (mut last_progress, mut last_flush, mut flush_every) = (Instant::now(), Instant::now(), FLUSH_EVERY);
    loop {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        let page = tokio::select! {
            page = pager.next_page() => page?,
            _ = cancel.cancelled() => { cancelled = true; break }
        };
        let Some(items) = page else { break };
        pages += 1;
        for item in items {
            match item {
                PageItem::Bar(k) => {
                    position = position.max(k.raw.open_time + iv);
                    gate.row(k.raw, || format!("binance page {pages}"));
                }
                PageItem::Malformed { open_time, reason } => {
                    if let Some(t) = open_time {
                        position = position.max(t + iv);
                    }
                    gate.malformed(format!("binance page {pages}"), open_time, reason);
                }
            }
        }
        refused.append(&mut gate.refusals);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            progress(&DownloadProgress {
                fraction: fraction(position),
                rows: added + gate.bars.len() as u64,
                pages,
                position,
            });
            last_progress = Instant::now();
        }
        if last_flush.elapsed() >= flush_every && !gate.bars.is_empty() {
            added += gate.bars.len() as u64;
            all.append(&mut gate.bars);
            let took = Instant::now();
            all = write(datasets, &key, all).await?;
            flush_every = FLUSH_EVERY.max(took.elapsed() * 10);
            last_flush = Instant::now();
        }
    }
    if !gate.bars.is_empty() || !datasets.path(&key).exists() {
        added += gate.bars.len() as u64;
        all.append(&mut gate.bars);
        all = write(datasets, &key, all).await?;
    }
    if !cancelled {
        position = end;
    }
    progress(&DownloadProgress { fraction: fraction(position), rows: added, pages, position });
    let seconds = started.elapsed().as_secs_f64();
    let times: Vec<i64> = all.iter().map(Bar::open_time).collect();
    let gaps =
        gaps::find(&times, request.interval).into_iter().filter(|g| g.to > request.from && g.from < to).collect();
    Ok(DownloadSummary {
        spec: key.spec(),
        path: datasets.path(&key),
        from: request.from,
        to,
        resumed_at,
        rows_added: added,
        rows_total: all.len() as u64,
        pages,
        refused,
        gaps,
        first_bar: times.first().copied(),
        last_bar: times.last().copied(),
        seconds,
        rows_per_second: (added > 0 && seconds > 0.0).then(|| added as f64 / seconds),
        cancelled,
        requests: stats.rest_requests.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Writes `all` as the dataset's file off the async threads; hands the bars back.
async fn write(datasets: &Datasets, key: &DatasetKey, all: Vec<Bar>) -> Result<Vec<Bar>, DatasetError> {
    let (path, key) = (datasets.path(key), key.clone());
    blocking(move || file::write(&path, &key, &all).map(|_| all)).await?
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, DatasetError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| DatasetError::Task(e.to_string()))
}
