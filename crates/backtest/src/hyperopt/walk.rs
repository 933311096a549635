//! Out of sample: the input's bar times cut into windows. `--test-fraction F` keeps the last
//! F of the bars for the test; `--walk-forward K` cuts them into K + 1 equal parts and makes K
//! rolling folds, fold i trained (in sample) on part i and tested on part i + 1. Each window
//! is a backtest of its own over the window's date range: the models warm up inside it and
//! every account starts flat with its starting balance.

use tradeflow_ingest::timeline::Timeline;

/// How the input is split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Everything in sample.
    Whole,
    TestFraction(f64),
    WalkForward(usize),
}

/// Bars opening in `[from_ms, to_ms)` (in JSON, `null` for an open end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    #[serde(serialize_with = "open_end")]
    pub from_ms: i64,
    #[serde(serialize_with = "open_end")]
    pub to_ms: i64,
}

fn open_end<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    if *t == i64::MIN || *t == i64::MAX { s.serialize_none() } else { s.serialize_i64(*t) }
}

impl Window {
    pub const ALL: Window = Window { from_ms: i64::MIN, to_ms: i64::MAX };

    /// `config`'s own `from_ms`/`to_ms` (unbounded where unset).
    pub fn of(from_ms: Option<i64>, to_ms: Option<i64>) -> Self {
        Window { from_ms: from_ms.unwrap_or(i64::MIN), to_ms: to_ms.unwrap_or(i64::MAX) }
    }

    fn contains(&self, t: i64) -> bool {
        self.from_ms <= t && t < self.to_ms
    }

    /// As `BacktestConfig`'s `from_ms` and `to_ms` (`None`: unbounded).
    pub fn bounds(&self) -> (Option<i64>, Option<i64>) {
        ((self.from_ms != i64::MIN).then_some(self.from_ms), (self.to_ms != i64::MAX).then_some(self.to_ms))
    }
}

/// In-sample windows and the out-of-sample window of each (none without a split).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Folds {
    pub in_sample: Vec<Window>,
    pub out_of_sample: Vec<Window>,
}

/// Fewest bars a window may have.
pub const MIN_BARS: usize = 2;

/// The folds of `split` over the bar times of `timeline` within `range` (the base
/// configuration's `--from`/`--to`).
pub fn folds(timeline: &Timeline, split: Split, range: Window) -> Result<Folds, String> {
    let mut times: Vec<i64> =
        timeline.iter().filter(|s| s.row.is_ok() && range.contains(s.time)).map(|s| s.time).collect();
    times.sort_unstable();
    times.dedup();
    let n = times.len();
    let at = |i: usize| if i >= n { i64::MAX } else { times[i] };
    match split {
        Split::Whole => Ok(Folds { in_sample: vec![range], out_of_sample: Vec::new() }),
        Split::TestFraction(f) => {
            if !(f > 0.0 && f < 1.0) {
                return Err(format!("--test-fraction: must be between 0 and 1, got {f}"));
            }
            let cut = ((n as f64) * (1.0 - f)).round() as usize;
            if cut < MIN_BARS || n - cut < MIN_BARS {
                return Err(format!(
                    "--test-fraction {f}: {n} bar times leave {cut} in sample and {} out of sample; each needs {MIN_BARS}",
                    n - cut.min(n)
                ));
            }
            Ok(Folds {
                in_sample: vec![Window { from_ms: range.from_ms, to_ms: at(cut) }],
                out_of_sample: vec![Window { from_ms: at(cut), to_ms: range.to_ms }],
            })
        }
        Split::WalkForward(k) => {
            if k == 0 {
                return Err("--walk-forward: needs at least 1 fold".into());
            }
            let parts = k + 1;
            if n < parts * MIN_BARS {
                return Err(format!("--walk-forward {k}: {n} bar times cannot make {parts} parts of {MIN_BARS} bars"));
            }
            let edge = |j: usize| j * n / parts;
            let window = |j: usize| Window {
                from_ms: if j == 0 { range.from_ms } else { at(edge(j)) },
                to_ms: if j + 1 == parts { range.to_ms } else { at(edge(j + 1)) },
            };
            Ok(Folds { in_sample: (0..k).map(window).collect(), out_of_sample: (1..=k).map(window).collect() })
        }
    }
}
