//! Progress of long offline runs (hyperopt trials, backtest rows) on stderr: an indicatif bar
//! with the count, a figure and the ETA on a terminal; a plain line every tenth of the work
//! (or every 10 s) when stderr is not a terminal, so that logs stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tradeflow_backtest::{Engine, Sink};
use tradeflow_ingest::timeline::Row;

/// One progress display; `update` may be called from several threads.
pub struct Display {
    /// The command, first word of a plain line.
    command: &'static str,
    what: &'static str,
    bar: Option<indicatif::ProgressBar>,
    /// Plain mode: when the last line was printed and at which count.
    plain: Mutex<(Instant, u64)>,
    started: Instant,
}

impl Display {
    /// Progress of `command`'s `total` `what` (e.g. "hyperopt", "trials").
    pub fn new(command: &'static str, what: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style =
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what);
            bar
        });
        Self { command, what, bar, plain: Mutex::new((Instant::now(), 0)), started: Instant::now() }
    }

    /// `done` of `total` `phase` (which may change: the bar restarts), with `note` (e.g. the
    /// best figure so far).
    pub fn update(&self, phase: &'static str, done: u64, total: u64, note: &str) {
        if let Some(bar) = &self.bar {
            if bar.length() != Some(total) || phase != self.what {
                bar.set_length(total);
                bar.set_prefix(phase);
            }
            bar.set_position(done);
            bar.set_message(note.to_string());
            return;
        }
        let mut last = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        let step = (total / 10).max(1);
        if done == total || done >= last.1 + step || last.0.elapsed() >= Duration::from_secs(10) {
            let spent = self.started.elapsed().as_secs_f64();
            let eta = if phase == self.what && done > 0 {
                format!(", ETA {:.0} s", spent / done as f64 * total.saturating_sub(done) as f64)
            } else {
                String::new()
            };
            let note = if note.is_empty() { String::new() } else { format!(", {note}") };
            eprintln!("{}: {phase} {done}/{total} done{note}{eta}", self.command);
            *last = (Instant::now(), done);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A backtest's rows as progress, shown only once the run has taken a second (short runs print
/// nothing).
pub struct Rows {
    total: u64,
    done: u64,
    started: Instant,
    display: Option<Display>,
}

/// Rows between two looks at the clock.
const CHECK_EVERY: u64 = 4096;

impl Rows {
    pub fn new(total: usize) -> Self {
        Self { total: total as u64, done: 0, started: Instant::now(), display: None }
    }

    pub fn finish(&self) {
        if let Some(d) = &self.display {
            d.update("rows", self.done, self.total, "");
            d.finish();
        }
    }
}

impl Sink for Rows {
    fn after_row(&mut self, _time: i64, _feed: usize, _row: &Row, _engine: &Engine) {
        self.done += 1;
        if !self.done.is_multiple_of(CHECK_EVERY) {
            return;
        }
        if self.display.is_none() && self.started.elapsed() >= Duration::from_secs(1) {
            self.display = Some(Display::new("backtest", "rows", self.total));
        }
        if let Some(d) = &self.display {
            d.update("rows", self.done, self.total, "");
        }
    }
}
