//! Progress of a running job: the work (on the job's threads) reports how far it is as often
//! as it likes into a `watch` channel, which keeps only the latest report; the worker samples
//! it at most [`REPORT_EVERY`] apart, so a job costs the bus and the store two writes a second
//! at most, however fast its loop.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tradeflow_core::job::JobProgress;

/// The fastest a job's progress is published.
pub const REPORT_EVERY: Duration = Duration::from_millis(500);

/// What the work says: `done` of `total` units of `step`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tick {
    pub step: String,
    pub done: u64,
    pub total: u64,
}

/// The work's end of the channel: cheap to call from any thread.
#[derive(Clone)]
pub struct Reporter(watch::Sender<Tick>);

impl Reporter {
    pub fn channel() -> (Reporter, watch::Receiver<Tick>) {
        let (tx, rx) = watch::channel(Tick::default());
        (Reporter(tx), rx)
    }

    pub fn report(&self, step: &str, done: u64, total: u64) {
        self.0.send_modify(|t| {
            if t.step != step {
                t.step = step.to_string();
            }
            t.done = done;
            t.total = total;
        });
    }
}

/// Turns ticks into [`JobProgress`] with an ETA from the pace of the current step.
pub struct Pace {
    step: String,
    step_started: Instant,
}

impl Pace {
    pub fn new(now: Instant) -> Pace {
        Pace { step: String::new(), step_started: now }
    }

    pub fn progress(&mut self, tick: &Tick, now: Instant) -> JobProgress {
        if tick.step != self.step {
            self.step = tick.step.clone();
            self.step_started = now;
        }
        let fraction = if tick.total == 0 { 0.0 } else { (tick.done as f64 / tick.total as f64).clamp(0.0, 1.0) };
        let elapsed = now.duration_since(self.step_started).as_secs_f64();
        // No pace before the first unit is done (or within the first tenth of a second).
        let eta_s = (fraction > 0.0 && elapsed > 0.1).then(|| elapsed / fraction * (1.0 - fraction));
        JobProgress { fraction, step: tick.step.clone(), eta_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_follows_the_pace_of_the_current_step() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        let tick = |step: &str, done, total| Tick { step: step.into(), done, total };
        let p = pace.progress(&tick("trials", 0, 10), t0);
        assert_eq!((p.fraction, p.eta_s), (0.0, None));
        let p = pace.progress(&tick("trials", 5, 10), t0 + Duration::from_secs(10));
        assert_eq!(p.fraction, 0.5);
        assert!((p.eta_s.unwrap() - 10.0).abs() < 1e-9);
        // A new step starts its own clock.
        let p = pace.progress(&tick("out of sample", 1, 4), t0 + Duration::from_secs(12));
        assert_eq!((p.step.as_str(), p.eta_s), ("out of sample", None));
        let p = pace.progress(&tick("out of sample", 2, 4), t0 + Duration::from_secs(14));
        assert!((p.eta_s.unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_channel_keeps_only_the_latest_report() {
        let (r, mut rx) = Reporter::channel();
        for i in 0..1000 {
            r.report("candles", i, 1000);
        }
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().done, 999);
    }
}
