//! A study's parameters as data: `tradeflow hyperopt`'s flags, with the space file's text. The
//! command line and a job submission (`POST /api/v1/tasks/hyperopt`) both become a [`Study`]
//! here.

use serde::{Deserialize, Serialize};

use super::{Base, Method, Objective, Split, Study, parse_space, sampler};
use crate::params::{BacktestParams, Built, Defaults};

/// Every parameter of a study; `backtest` is the base run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperoptParams {
    pub backtest: BacktestParams,
    /// The search space: TOML `[param]` entries (docs/hyperopt.md).
    pub space: String,
    /// sharpe (default), sortino, calmar, return, return_over_drawdown.
    pub objective: Option<String>,
    /// grid, random, tpe (default).
    pub method: Option<String>,
    /// Trials (default: the whole grid, or 100).
    pub trials: Option<usize>,
    /// Seed of the random and TPE draws.
    pub seed: u64,
    /// Trials run at once (default: the runner's threads); results do not depend on it.
    pub jobs: Option<usize>,
    /// K rolling folds.
    pub walk_forward: Option<usize>,
    /// The last F of the bars out of sample.
    pub test_fraction: Option<f64>,
    /// How many of the best trials to report (default 10).
    pub top: Option<usize>,
    /// The account scored (default: the first).
    pub account: Option<String>,
}

/// A study ready to run, and the `[rules]` text of its base (for the files it writes).
pub struct Planned {
    pub study: Study,
    pub llm_text: Option<String>,
}

impl HyperoptParams {
    /// Parameters that came over the API: the server's files are not the caller's to name.
    pub fn from_api(json: &serde_json::Value) -> Result<Self, Vec<String>> {
        let p: Self = serde_json::from_value(json.clone()).map_err(|e| vec![format!("params: {e}")])?;
        if !p.backtest.replays.is_empty() {
            return Err(vec!["params.backtest.replays: files on the server cannot be named over the API".into()]);
        }
        Ok(p)
    }

    /// The study; `jobs` when the parameters name none. Every problem is reported, each with
    /// its field.
    pub fn plan(&self, defaults: &Defaults, jobs: usize) -> Result<Planned, Vec<String>> {
        let mut problems = Vec::new();
        let objective = match Objective::parse(self.objective.as_deref().unwrap_or("sharpe")) {
            Some(o) => Some(o),
            None => {
                problems.push(format!("objective {:?}: expected one of {}", self.objective, Objective::NAMES));
                None
            }
        };
        let method = match Method::parse(self.method.as_deref().unwrap_or("tpe")) {
            Some(m) => Some(m),
            None => {
                problems.push(format!("method {:?}: expected one of {}", self.method, Method::NAMES));
                None
            }
        };
        if self.walk_forward.is_some() && self.test_fraction.is_some() {
            problems.push("walk_forward, test_fraction: give one or the other".into());
        }
        if self.trials == Some(0) {
            problems.push("trials: run at least one trial".into());
        }
        if self.jobs == Some(0) {
            problems.push("jobs: at least 1".into());
        }
        let built = self
            .backtest
            .build(defaults)
            .map_err(|p| p.into_iter().map(|e| format!("backtest.{e}")).collect::<Vec<_>>());
        let Built { config, options, llm_text } = match built {
            Ok(b) => b,
            Err(p) => {
                problems.extend(p);
                return Err(problems);
            }
        };
        let base = match Base::new(config, options) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("backtest: {e}"));
                return Err(problems);
            }
        };
        let space = match parse_space(&self.space, &base) {
            Ok(s) => Some(s),
            Err(p) => {
                problems.extend(p.into_iter().map(|e| format!("space: {e}")));
                None
            }
        };
        let account = match &self.account {
            None => Some(0),
            Some(id) => match base.config.accounts.iter().position(|a| &a.id == id) {
                Some(i) => Some(i),
                None => {
                    problems.push(format!(
                        "account {id:?}: no such account; configured: {}",
                        base.config.accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                    None
                }
            },
        };
        let (Some(objective), Some(method), Some(space), Some(account)) = (objective, method, space, account) else {
            return Err(problems);
        };
        let trials = match (self.trials, method) {
            (Some(n), _) => n,
            (None, Method::Grid) => match sampler::grid(&space) {
                Ok(points) => points.len(),
                Err(p) => {
                    problems.extend(p.into_iter().map(|e| format!("space: {e}")));
                    0
                }
            },
            (None, _) => 100,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let split = match (self.walk_forward, self.test_fraction) {
            (Some(k), _) => Split::WalkForward(k),
            (None, Some(f)) => Split::TestFraction(f),
            (None, None) => Split::Whole,
        };
        Ok(Planned {
            study: Study {
                base,
                space,
                method,
                objective,
                account,
                trials,
                seed: self.seed,
                jobs: self.jobs.unwrap_or(jobs).max(1),
                split,
                top: self.top.unwrap_or(10).max(1),
            },
            llm_text,
        })
    }
}
