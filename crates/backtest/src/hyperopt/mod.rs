//! Hyperparameter search over backtests: each trial is a full backtest of the base
//! configuration with a set of parameter values ([`space`]), chosen by grid, seeded random
//! draws or TPE ([`sampler`]), scored by one statistic ([`objective`]) in sample, and the best
//! trials checked out of sample ([`walk`]).
//!
//! Determinism: a study's trials and results depend only on the space, the base, the method,
//! the seed and the number of trials, never on `jobs`. Grid and random points are all drawn
//! before any trial runs; TPE asks in batches of a fixed size, each from the results of the
//! batches before it, told in trial order. Trials run on `jobs` threads, each with its own
//! engine; results are kept by trial number.

pub mod files;
pub mod objective;
pub mod params;
pub mod sampler;
pub mod space;
pub mod walk;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};
use tradeflow_ingest::timeline::Timeline;

use crate::sink::StopFlag;

pub use objective::Objective;
pub use sampler::Method;
pub use space::{Base, Space, parse_space};
pub use walk::{Folds, Split, Window};

/// What a study runs.
#[derive(Debug, Clone)]
pub struct Study {
    pub base: Base,
    pub space: Space,
    pub method: Method,
    pub objective: Objective,
    /// Index of the account whose statistics are scored.
    pub account: usize,
    pub trials: usize,
    pub seed: u64,
    pub jobs: usize,
    pub split: Split,
    /// How many of the best trials are reported (and run out of sample).
    pub top: usize,
}

/// Why a study could not run.
#[derive(Debug, thiserror::Error)]
pub enum HyperoptError {
    #[error("{}", .0.join("\n"))]
    Study(Vec<String>),
    #[error("TPE: {0}")]
    Tpe(String),
    /// Stopped on request (a cancelled or timed-out job).
    #[error("cancelled")]
    Cancelled,
}

/// One trial in sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialResult {
    /// 0-based, in the order the trials were chosen.
    pub number: usize,
    pub params: Map<String, Value>,
    /// Mean of the in-sample windows' figures; `null` when any has none (or the trial failed).
    pub in_sample: Option<f64>,
    /// Each in-sample window's figure.
    pub in_windows: Vec<Option<f64>>,
    /// Why the trial has no figure: an invalid configuration, or a backtest that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One of the best trials, with its out-of-sample figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: usize,
    #[serde(flatten)]
    pub trial: TrialResult,
    /// Mean of the out-of-sample windows' figures (`null` without a split, or when any has none).
    pub out_of_sample: Option<f64>,
    pub out_windows: Vec<Option<f64>>,
}

/// A finished study.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub method: Method,
    pub objective: Objective,
    pub account: String,
    pub seed: u64,
    pub split: Split,
    pub folds: Folds,
    /// Every trial, by number.
    pub trials: Vec<TrialResult>,
    /// The best trials on their in-sample figure (ties to the earlier trial), best first; a set
    /// of values drawn more than once is listed at its first trial only.
    pub top: Vec<Ranked>,
}

impl Outcome {
    /// The winner: the best trial in sample, if any trial has a figure.
    pub fn best(&self) -> Option<&Ranked> {
        self.top.first().filter(|r| r.trial.in_sample.is_some())
    }
}

/// How far a study is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// `"trials"` or `"out of sample"`.
    pub phase: &'static str,
    pub done: usize,
    pub total: usize,
    pub best: Option<f64>,
}

/// Runs `study`; `timeline` is the base configuration's feeds, read once for every trial (each
/// trial is a backtest of its own over each window's date range). `progress` is called after
/// each trial, from the worker threads.
pub fn run(study: &Study, timeline: &Timeline, progress: &(dyn Fn(Progress) + Sync)) -> Result<Outcome, HyperoptError> {
    run_until(study, timeline, progress, &AtomicBool::new(false))
}

/// [`run`] that stops with [`HyperoptError::Cancelled`] once `stop` is set: the running
/// trials stop within a few thousand rows, no new one starts.
pub fn run_until(
    study: &Study,
    timeline: &Timeline,
    progress: &(dyn Fn(Progress) + Sync),
    stop: &AtomicBool,
) -> Result<Outcome, HyperoptError> {
    let stopped = || stop.load(Ordering::Relaxed);
    let config = &study.base.config;
    let Some(account) = config.accounts.get(study.account) else {
        return Err(HyperoptError::Study(vec![format!("no account number {}", study.account)]));
    };
    if study.trials == 0 {
        return Err(HyperoptError::Study(vec!["--trials: run at least one trial".into()]));
    }
    let range = Window::of(config.from_ms, config.to_ms);
    let folds = walk::folds(timeline, study.split, range).map_err(|e| HyperoptError::Study(vec![e]))?;
    let names: Vec<String> = study.space.params.iter().map(|p| p.name.clone()).collect();
    let evaluate = |values: &[Value], windows: &[Window]| -> Figures {
        let (mut config, options) = match study.base.apply(&study.space, values) {
            Ok(c) => c,
            Err(problems) => return (vec![None; windows.len()], Some(problems.join("; "))),
        };
        let mut figures = Vec::with_capacity(windows.len());
        let mut error = None;
        for w in windows {
            (config.from_ms, config.to_ms) = w.bounds();
            match crate::report::backtest_on(&config, timeline, &options, &mut StopFlag(stop)) {
                Ok(mut report) => match report.accounts.swap_remove(study.account).stats {
                    Some(s) => figures.push(study.objective.of(&s)),
                    None => {
                        figures.push(None);
                        error.get_or_insert("no statistics".to_string());
                    }
                },
                Err(e) => {
                    figures.push(None);
                    error.get_or_insert(e.to_string());
                }
            }
        }
        (figures, error)
    };
    let best = Mutex::new(None::<f64>);
    let done = AtomicUsize::new(0);
    let report = |total: usize, phase: &'static str, figure: Option<f64>| {
        let mut b = best.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = figure
            && b.is_none_or(|x| f > x)
        {
            *b = Some(f);
        }
        let done = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress(Progress { phase, done, total, best: *b });
    };
    let trial_of = |number: usize, values: &[Value], (in_windows, error): Figures| TrialResult {
        number,
        params: names.iter().cloned().zip(values.iter().cloned()).collect(),
        in_sample: mean(&in_windows),
        in_windows,
        error,
    };
    let total = study.trials;
    let mut trials: Vec<TrialResult> = Vec::with_capacity(total);
    // A point drawn again (TPE often asks for the same whole numbers) takes the figures of its
    // first run instead of running again: the backtest is deterministic, so nothing changes
    // but the time.
    let known: Mutex<HashMap<String, Figures>> = Mutex::new(HashMap::new());
    let key = |p: &[Value]| serde_json::to_string(p).unwrap_or_default();
    let run_batch = |points: &[Vec<Value>], first: usize| -> Vec<TrialResult> {
        let mut fresh: Vec<usize> = Vec::new();
        {
            let known = known.lock().unwrap_or_else(|e| e.into_inner());
            for (i, p) in points.iter().enumerate() {
                if !known.contains_key(&key(p)) && !fresh.iter().any(|&j| points[j] == *p) {
                    fresh.push(i);
                }
            }
        }
        let results = parallel(fresh.len(), study.jobs, |k| {
            if stopped() {
                return Figures::default();
            }
            let result = evaluate(&points[fresh[k]], &folds.in_sample);
            report(total, "trials", mean(&result.0));
            result
        });
        if stopped() {
            // Cancelled: what is left of the batch is not worth its bookkeeping.
            return Vec::new();
        }
        let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
        for (k, r) in fresh.iter().zip(results) {
            known.insert(key(&points[*k]), r);
        }
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let result = known.get(&key(p)).cloned().unwrap_or_default();
                if !fresh.contains(&i) {
                    report(total, "trials", mean(&result.0));
                }
                trial_of(first + i, p, result)
            })
            .collect()
    };
    match study.method {
        Method::Grid | Method::Random => {
            let points = if study.method == Method::Grid {
                let points = sampler::grid(&study.space).map_err(HyperoptError::Study)?;
                if points.len() > total {
                    return Err(HyperoptError::Study(vec![format!(
                        "--trials {total}: the grid has {} points; run them all (--trials {} or leave --trials out)",
                        points.len(),
                        points.len()
                    )]));
                }
                points
            } else {
                sampler::random(&study.space, total, study.seed)
            };
            trials = run_batch(&points, 0);
            if stopped() {
                return Err(HyperoptError::Cancelled);
            }
        }
        Method::Tpe => {
            let mut tpe = sampler::Tpe::new(&study.space, study.seed).map_err(HyperoptError::Tpe)?;
            for size in sampler::tpe_batches(total) {
                let asked = tpe.ask(size).map_err(HyperoptError::Tpe)?;
                let points: Vec<Vec<Value>> = asked.iter().map(|a| a.values.clone()).collect();
                let results = run_batch(&points, trials.len());
                if stopped() {
                    return Err(HyperoptError::Cancelled);
                }
                for (a, r) in asked.iter().zip(&results) {
                    tpe.tell(a, r.in_sample).map_err(HyperoptError::Tpe)?;
                }
                trials.extend(results);
            }
        }
    }
    let mut order: Vec<&TrialResult> = trials.iter().collect();
    // Stable sort: ties keep trial order, so the earlier trial wins.
    order.sort_by(|a, b| objective::rank_key(b.in_sample).total_cmp(&objective::rank_key(a.in_sample)));
    // Each set of values once, at its first trial.
    let mut top: Vec<&TrialResult> = Vec::new();
    for t in order {
        if top.len() == study.top.max(1) {
            break;
        }
        if !top.iter().any(|u| u.params == t.params) {
            top.push(t);
        }
    }
    // Out of sample only now, for the best trials: nothing of it reaches the choice.
    done.store(0, Ordering::Relaxed);
    let out: Vec<Vec<Option<f64>>> = if folds.out_of_sample.is_empty() {
        vec![Vec::new(); top.len()]
    } else {
        // `params` is keyed by name; the values go back in the space's order.
        let points: Vec<Vec<Value>> = top
            .iter()
            .map(|t| names.iter().map(|n| t.params.get(n).cloned().unwrap_or(Value::Null)).collect())
            .collect();
        parallel(points.len(), study.jobs, |i| {
            let (figures, _) = evaluate(&points[i], &folds.out_of_sample);
            report(points.len(), "out of sample", mean(&figures));
            figures
        })
    };
    if stopped() {
        return Err(HyperoptError::Cancelled);
    }
    let top = top
        .into_iter()
        .zip(out)
        .enumerate()
        .map(|(i, (t, out_windows))| Ranked {
            rank: i + 1,
            trial: t.clone(),
            out_of_sample: if out_windows.is_empty() { None } else { mean(&out_windows) },
            out_windows,
        })
        .collect();
    Ok(Outcome {
        method: study.method,
        objective: study.objective,
        account: account.id.clone(),
        seed: study.seed,
        split: study.split,
        folds,
        trials,
        top,
    })
}

/// A trial's figure per window, and why it has none.
type Figures = (Vec<Option<f64>>, Option<String>);

/// Mean of the figures; `None` when there are none or any is missing.
fn mean(figures: &[Option<f64>]) -> Option<f64> {
    if figures.is_empty() {
        return None;
    }
    let sum = figures.iter().try_fold(0.0, |s, f| f.map(|f| s + f))?;
    Some(sum / figures.len() as f64)
}

/// `f(0..n)` on `jobs` threads, results by index.
fn parallel<T: Send>(n: usize, jobs: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, n.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t = f(i);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(t);
                }
            });
        }
    });
    slots.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}
