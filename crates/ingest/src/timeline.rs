//! One timeline over several candle series (files or datasets): the order in which `worker ingest --replay`, `up`
//! and `tradeflow backtest` feed their rows to [`IngestStage`](crate::IngestStage).
//!
//! The merge is by bar open time, ties going to the file listed first, and it keeps each
//! file's own order (a bar going backwards in a file is still seen as such, and refused by the
//! stage). An unreadable row keeps the time of the row before it, so it is reported where it
//! stands in its file. Live replay and backtests share this one definition so that both see
//! the same candles in the same order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tradeflow_core::candle_csv::{CandleReader, CsvError};
use tradeflow_core::market::{Interval, RawBar};

/// Where a feed's rows come from.
#[derive(Debug, Clone)]
pub enum FeedInput {
    /// A candle CSV file, read by [`Timeline::load`].
    Csv(PathBuf),
    /// Bars already read and checked (a dataset's): `name` says where from, for messages
    /// (`dataset BTCUSDT:1h`); `source` is the source their candles carry (`binance`).
    Bars { name: String, source: String, bars: Arc<Vec<RawBar>> },
}

/// One candle series to replay or backtest: a CSV file or a dataset's bars.
#[derive(Debug, Clone)]
pub struct Feed {
    pub symbol: String,
    pub interval: Interval,
    pub input: FeedInput,
}

impl Feed {
    /// A candle CSV file.
    pub fn csv(path: impl Into<PathBuf>, symbol: impl Into<String>, interval: Interval) -> Self {
        Self { symbol: symbol.into(), interval, input: FeedInput::Csv(path.into()) }
    }

    /// Bars already read: a dataset's, named `name`, from `source`.
    pub fn bars(
        name: String,
        source: String,
        symbol: impl Into<String>,
        interval: Interval,
        bars: Vec<RawBar>,
    ) -> Self {
        Self { symbol: symbol.into(), interval, input: FeedInput::Bars { name, source, bars: Arc::new(bars) } }
    }

    /// The file's path or the dataset's name, for messages.
    pub fn name(&self) -> String {
        match &self.input {
            FeedInput::Csv(path) => path.display().to_string(),
            FeedInput::Bars { name, .. } => name.clone(),
        }
    }

    /// The source its candles carry when it has one of its own (a dataset's); a file's
    /// candles carry the run's.
    pub fn source(&self) -> Option<&str> {
        match &self.input {
            FeedInput::Csv(_) => None,
            FeedInput::Bars { source, .. } => Some(source),
        }
    }
}

/// A file that could not be read at all (as opposed to a bad line, which is kept as a row).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FeedError {
    pub path: String,
    #[source]
    pub source: CsvError,
}

/// A row of a file: the bar, or the error text naming the file, line and column.
pub type Row = Result<RawBar, String>;

/// Every row of every feed, and the order to visit them in.
#[derive(Debug, Clone)]
pub struct Timeline {
    rows: Vec<Vec<Row>>,
    /// Line number in its file (1-based, the header is line 1) of each row.
    lines: Vec<Vec<usize>>,
    /// (time, feed, row index) in visiting order.
    order: Vec<(i64, usize, usize)>,
    /// First bar open time and last bar close time over every feed (`None` with no bar).
    span: Option<(i64, i64)>,
}

impl Timeline {
    /// Reads every feed (a bad line becomes an error row; an unreadable file is an error). A
    /// feed of bars counts its rows from 1 where a file counts lines.
    pub fn load(feeds: &[Feed]) -> Result<Self, FeedError> {
        let (mut rows, mut lines) = (Vec::new(), Vec::new());
        for f in feeds {
            let (l, r): (Vec<usize>, Vec<Row>) = match &f.input {
                FeedInput::Csv(path) => read_rows(path)?.into_iter().unzip(),
                FeedInput::Bars { bars, .. } => bars.iter().enumerate().map(|(i, b)| (i + 1, Ok(*b))).unzip(),
            };
            rows.push(r);
            lines.push(l);
        }
        let intervals: Vec<Interval> = feeds.iter().map(|f| f.interval).collect();
        Ok(Self { lines, ..Self::merge(rows, &intervals) })
    }

    /// Merges rows already read, one list per feed, with each feed's interval (row `i` counts
    /// as line `i + 2`).
    pub fn merge(rows: Vec<Vec<Row>>, intervals: &[Interval]) -> Self {
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let mut timed: Vec<Vec<i64>> = Vec::with_capacity(rows.len());
        for (f, file) in rows.iter().enumerate() {
            let mut t = i64::MIN;
            let mut times = Vec::with_capacity(file.len());
            for row in file {
                if let Ok(raw) = row {
                    t = raw.open_time;
                    first = first.min(t);
                    last = last.max(t + intervals.get(f).map_or(0, |i| i.millis()));
                }
                times.push(t);
            }
            timed.push(times);
        }
        let total = timed.iter().map(Vec::len).sum();
        let mut order = Vec::with_capacity(total);
        let mut next = vec![0usize; timed.len()];
        while let Some(f) =
            (0..timed.len()).filter(|f| next[*f] < timed[*f].len()).min_by_key(|f| (timed[*f][next[*f]], *f))
        {
            order.push((timed[f][next[f]], f, next[f]));
            next[f] += 1;
        }
        let span = (first <= last).then_some((first, last));
        let lines = rows.iter().map(|r| (0..r.len()).map(|i| i + 2).collect()).collect();
        Self { rows, lines, order, span }
    }

    /// The rows in visiting order.
    pub fn iter(&self) -> impl Iterator<Item = Step<'_>> + '_ {
        self.order.iter().map(|&(time, feed, i)| Step {
            time,
            feed,
            line: self.lines[feed][i],
            row: &self.rows[feed][i],
        })
    }

    /// Number of rows over every feed.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The rows of feed `f`, in its file's order.
    pub fn rows(&self, f: usize) -> &[Row] {
        self.rows.get(f).map_or(&[], Vec::as_slice)
    }

    /// Last bar close time minus first bar open time (0 with no bar): how far a second pass
    /// of a load test is shifted.
    pub fn span_ms(&self) -> i64 {
        self.span.map_or(0, |(a, b)| b - a)
    }

    /// First bar open time, if any bar was read.
    pub fn first_time(&self) -> Option<i64> {
        self.span.map(|(a, _)| a)
    }
}

/// One row of the timeline.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Bar open time (an unreadable row has the time of the row before it).
    pub time: i64,
    /// Index of its feed.
    pub feed: usize,
    /// Line in its file (1-based; the header is line 1).
    pub line: usize,
    pub row: &'a Row,
}

/// Every row of a candle file with its line number; a row that cannot be read is its error
/// text, naming the file, line and column, and does not stop the rows after it.
pub fn read_rows(path: &Path) -> Result<Vec<(usize, Row)>, FeedError> {
    let name = path.display().to_string();
    let file_error = |source| FeedError { path: name.clone(), source };
    let file = std::fs::File::open(path).map_err(|e| file_error(CsvError::Io { line: 0, source: e }))?;
    let reader = CandleReader::new(std::io::BufReader::new(file)).map_err(file_error)?;
    let mut rows = Vec::new();
    let mut reader = reader;
    while let Some(row) = reader.next() {
        match row {
            // An unreadable file (not a bad line) ends the replay.
            Err(e @ CsvError::Io { .. }) => return Err(file_error(e)),
            row => rows.push((reader.line(), row.map_err(|e| format!("{name}: {e}")))),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64) -> Row {
        Ok(RawBar { open_time: t, open: 1.0, high: 1.0, low: 1.0, close: 1.0, volume: 1.0 })
    }

    #[test]
    fn merges_by_time_ties_to_the_first_feed_and_keeps_each_files_order() {
        let a = vec![bar(0), bar(2), Err("bad".into()), bar(1)];
        let b = vec![bar(0), bar(1), bar(3)];
        let t = Timeline::merge(vec![a, b], &[Interval::H1, Interval::H1]);
        let seen: Vec<(i64, usize)> = t.iter().map(|s| (s.time, s.feed)).collect();
        // a's bad row keeps the time of the row before it (2); a's backwards bar (1) stays
        // after it, so the stage sees it go backwards.
        assert_eq!(seen, vec![(0, 0), (0, 1), (1, 1), (2, 0), (2, 0), (1, 0), (3, 1)]);
        assert_eq!(t.span_ms(), 3 + Interval::H1.millis());
        assert_eq!(t.len(), 7);
    }

    #[test]
    fn no_rows_no_span() {
        let t = Timeline::merge(vec![vec![Err("bad".into())]], &[Interval::H1]);
        assert_eq!((t.len(), t.span_ms(), t.first_time()), (1, 0, None));
    }
}
