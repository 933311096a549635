//! Where trials come from: the grid, seeded random draws, or TPE (the `tpe` crate: one
//! univariate Parzen/histogram estimator per parameter, as in Bergstra et al. 2011).
//!
//! Every parameter is drawn as a coordinate `x` in a half-open range and mapped to its value,
//! so random search and TPE share one mapping: a float range is `x` itself (or `exp(x)` on a
//! log scale); a stepped range and a choice are the level `floor(x)` of `[0, levels)` (on a
//! log scale the level under `exp(x)`).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use super::space::{Domain, Param, Space};

/// How trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Grid,
    Random,
    Tpe,
}

impl Method {
    pub const NAMES: &'static str = "grid, random, tpe";

    pub fn name(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
            Self::Tpe => "tpe",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grid" => Some(Self::Grid),
            "random" => Some(Self::Random),
            "tpe" => Some(Self::Tpe),
            _ => None,
        }
    }
}

/// TPE's first trials are random draws (its densities need observations to start from).
pub const TPE_STARTUP: usize = 10;
/// TPE asks for this many trials at a time, each batch from the results of the batches before
/// it in trial order: the trials do not depend on how many run at once.
pub const TPE_BATCH: usize = 8;

/// Largest grid accepted.
pub const MAX_GRID: usize = 1_000_000;

/// A parameter's coordinate.
#[derive(Debug, Clone)]
pub struct Coord {
    lo: f64,
    hi: f64,
    kind: CoordKind,
}

#[derive(Debug, Clone)]
enum CoordKind {
    Linear,
    Log,
    /// `floor(x)` indexes `levels`.
    Levels(Vec<Value>),
    /// `exp(x)` snapped down to a level `low + k × step`.
    LogLevels {
        low: f64,
        step: f64,
        levels: Vec<Value>,
    },
    /// A choice: `floor(x)` indexes the values; TPE keeps a histogram for it.
    Categorical(Vec<Value>),
}

impl Coord {
    pub fn new(p: &Param) -> Self {
        let levels = p.domain.levels();
        match (&p.domain, levels) {
            (Domain::Choice(values), _) => {
                Self { lo: 0.0, hi: values.len() as f64, kind: CoordKind::Categorical(values.clone()) }
            }
            (Domain::Float { low, high, step: None, log }, _) => {
                if *log {
                    Self { lo: low.ln(), hi: high.ln().max(low.ln().next_up()), kind: CoordKind::Log }
                } else {
                    Self { lo: *low, hi: high.max(low.next_up()), kind: CoordKind::Linear }
                }
            }
            (Domain::Int { low, step, log: true, .. }, Some(levels)) => {
                let (low, step) = (*low as f64, *step as f64);
                let top = low + levels.len() as f64 * step;
                Self { lo: low.ln(), hi: top.ln(), kind: CoordKind::LogLevels { low, step, levels } }
            }
            (Domain::Float { low, step: Some(step), log: true, .. }, Some(levels)) => {
                let top = low + levels.len() as f64 * step;
                Self { lo: low.ln(), hi: top.ln(), kind: CoordKind::LogLevels { low: *low, step: *step, levels } }
            }
            (_, Some(levels)) => Self { lo: 0.0, hi: levels.len() as f64, kind: CoordKind::Levels(levels) },
            (_, None) => Self { lo: 0.0, hi: 1.0, kind: CoordKind::Linear },
        }
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self.kind, CoordKind::Categorical(_))
    }

    /// A uniform draw of the coordinate.
    pub fn draw(&self, rng: &mut StdRng) -> f64 {
        rng.random_range(self.lo..self.hi)
    }

    /// The parameter value at coordinate `x`.
    pub fn value(&self, x: f64) -> Value {
        let index = |n: usize, x: f64| (x.floor().max(0.0) as usize).min(n - 1);
        match &self.kind {
            CoordKind::Linear => Value::from(x.clamp(self.lo, self.hi)),
            CoordKind::Log => Value::from(x.exp().clamp(self.lo.exp(), self.hi.exp())),
            CoordKind::Levels(levels) | CoordKind::Categorical(levels) => levels[index(levels.len(), x)].clone(),
            CoordKind::LogLevels { low, step, levels } => {
                levels[index(levels.len(), (x.exp() - low) / step + 1e-9)].clone()
            }
        }
    }

    fn tpe_range(&self) -> Result<tpe::range::Range, String> {
        tpe::range(self.lo, self.hi).map_err(|e| e.to_string())
    }
}

/// Every point of the grid, the last parameter varying fastest; refused when a float range
/// has no step or the grid is too large.
pub fn grid(space: &Space) -> Result<Vec<Vec<Value>>, Vec<String>> {
    let mut problems = Vec::new();
    let mut axes = Vec::new();
    for p in &space.params {
        match p.domain.levels() {
            Some(l) => axes.push(l),
            None => problems.push(format!("param.{:?}: a grid needs a step for a float range", p.name)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let size = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.len()).filter(|n| *n <= MAX_GRID));
    let Some(size) = size else {
        return Err(vec![format!("the grid has more than {MAX_GRID} points; add steps or narrow the ranges")]);
    };
    let mut points = Vec::with_capacity(size);
    for mut i in 0..size {
        let mut point = vec![Value::Null; axes.len()];
        for (k, axis) in axes.iter().enumerate().rev() {
            point[k] = axis[i % axis.len()].clone();
            i /= axis.len();
        }
        points.push(point);
    }
    Ok(points)
}

/// `n` independent uniform draws (on each parameter's own scale), from `seed`.
pub fn random(space: &Space, n: usize, seed: u64) -> Vec<Vec<Value>> {
    let coords: Vec<Coord> = space.params.iter().map(Coord::new).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| coords.iter().map(|c| c.value(c.draw(&mut rng))).collect()).collect()
}

/// TPE over the space, asked and told in batches.
pub struct Tpe {
    coords: Vec<Coord>,
    optimizers: Vec<tpe::TpeOptimizer>,
    rng: StdRng,
    asked: usize,
}

/// A point asked of [`Tpe`]: its coordinates (to tell back) and values.
#[derive(Debug, Clone)]
pub struct Asked {
    pub coords: Vec<f64>,
    pub values: Vec<Value>,
}

impl Tpe {
    pub fn new(space: &Space, seed: u64) -> Result<Self, String> {
        let coords: Vec<Coord> = space.params.iter().map(Coord::new).collect();
        let optimizers = coords
            .iter()
            .map(|c| {
                let estimator = if c.is_categorical() { tpe::histogram_estimator() } else { tpe::parzen_estimator() };
                Ok(tpe::TpeOptimizer::new(estimator, c.tpe_range()?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { coords, optimizers, rng: StdRng::seed_from_u64(seed), asked: 0 })
    }

    /// The next `n` points: random draws for the first [`TPE_STARTUP`], then TPE's choice
    /// from what was told so far.
    pub fn ask(&mut self, n: usize) -> Result<Vec<Asked>, String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let startup = self.asked < TPE_STARTUP;
            let mut coords = Vec::with_capacity(self.coords.len());
            for (c, o) in self.coords.iter().zip(&mut self.optimizers) {
                let x =
                    if startup { c.draw(&mut self.rng) } else { o.ask(&mut self.rng).map_err(|e| e.to_string())? };
                coords.push(x);
            }
            let values = self.coords.iter().zip(&coords).map(|(c, x)| c.value(*x)).collect();
            out.push(Asked { coords, values });
            self.asked += 1;
        }
        Ok(out)
    }

    /// A trial's result: `score` is to be maximised; `None` (failed, or no figure) counts as
    /// the worst.
    pub fn tell(&mut self, asked: &Asked, score: Option<f64>) -> Result<(), String> {
        // TPE minimises; a trial without a figure is worse than any with one.
        let loss = match score {
            Some(s) if !s.is_nan() => -s,
            _ => f64::INFINITY,
        };
        for (o, x) in self.optimizers.iter_mut().zip(&asked.coords) {
            o.tell(*x, loss).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The batch sizes of a TPE run of `trials`: the startup draws, then [`TPE_BATCH`] at a time.
pub fn tpe_batches(trials: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let startup = trials.min(TPE_STARTUP);
    if startup > 0 {
        out.push(startup);
    }
    let mut left = trials - startup;
    while left > 0 {
        let b = left.min(TPE_BATCH);
        out.push(b);
        left -= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn space(domains: &[(&str, Domain)]) -> Space {
        Space { params: domains.iter().map(|(n, d)| Param::new(n, d.clone())).collect() }
    }

    #[test]
    fn the_grid_varies_the_last_parameter_fastest_and_needs_steps() {
        let s = space(&[
            ("a", Domain::Int { low: 1, high: 5, step: 2, log: false }),
            ("b", Domain::Choice(vec![json!("x"), json!("y")])),
        ]);
        let g = grid(&s).unwrap();
        let expected = [[1, 0], [1, 1], [3, 0], [3, 1], [5, 0], [5, 1]];
        let names = ["x", "y"];
        assert_eq!(g, expected.map(|[a, b]| vec![json!(a), json!(names[b])]));
        let s = space(&[("f", Domain::Float { low: 0.0, high: 1.0, step: None, log: false })]);
        assert!(grid(&s).unwrap_err()[0].contains("needs a step"));
    }

    #[test]
    fn random_draws_stay_in_their_domain_and_follow_the_seed() {
        let s = space(&[
            ("i", Domain::Int { low: 10, high: 1000, step: 10, log: true }),
            ("f", Domain::Float { low: 0.001, high: 1.0, step: None, log: true }),
        ]);
        let draws = random(&s, 2000, 3);
        assert_eq!(draws, random(&s, 2000, 3));
        assert_ne!(draws, random(&s, 2000, 4));
        for d in &draws {
            let i = d[0].as_i64().unwrap();
            assert!((10..=1000).contains(&i) && i % 10 == 0, "{i}");
            let f = d[1].as_f64().unwrap();
            assert!((0.001..=1.0).contains(&f), "{f}");
        }
        // Log-uniform: about a third of the draws in each decade of [0.001, 1].
        let low = draws.iter().filter(|d| d[1].as_f64().unwrap() < 0.01).count();
        assert!((550..=780).contains(&low), "{low} of 2000 below 0.01");
    }

    #[test]
    fn tpe_concentrates_near_the_optimum() {
        // Maximise -(x - 37)² over 0..=100: TPE's draws after its random start must come
        // closer to 37 than the random start's, and find it within 2.
        let s = space(&[("x", Domain::Int { low: 0, high: 100, step: 1, log: false })]);
        let mut tpe = Tpe::new(&s, 11).unwrap();
        let mut seen = Vec::new();
        for size in tpe_batches(66) {
            let asked = tpe.ask(size).unwrap();
            for a in &asked {
                let x = a.values[0].as_i64().unwrap() as f64;
                tpe.tell(a, Some(-(x - 37.0).powi(2))).unwrap();
                seen.push(x);
            }
        }
        let dist = |xs: &[f64]| xs.iter().map(|x| (x - 37.0).abs()).sum::<f64>() / xs.len() as f64;
        let (start, last) = (dist(&seen[..TPE_STARTUP]), dist(&seen[seen.len() - 16..]));
        assert!(last < start / 2.0, "random start {start}, last TPE batches {last}");
        let best = seen.iter().map(|x| (x - 37.0).abs()).fold(f64::MAX, f64::min);
        assert!(best <= 2.0, "closest {best}");
        assert_eq!(tpe_batches(25), [10, 8, 7]);
    }
}
