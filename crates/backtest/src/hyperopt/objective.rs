//! What a trial is scored on: one figure of backtesting.py's statistics (higher is better).

use tradeflow_analytics::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `Sharpe Ratio`.
    Sharpe,
    /// `Sortino Ratio`.
    Sortino,
    /// `Calmar Ratio`.
    Calmar,
    /// `Return [%]`.
    Return,
    /// `Return [%]` / |`Max. Drawdown [%]`|; +∞ for a gain without a drawdown.
    ReturnOverDrawdown,
}

impl Objective {
    pub const NAMES: &str = "sharpe, sortino, calmar, return, return_over_drawdown";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sharpe" => Some(Self::Sharpe),
            "sortino" => Some(Self::Sortino),
            "calmar" => Some(Self::Calmar),
            "return" => Some(Self::Return),
            "return_over_drawdown" => Some(Self::ReturnOverDrawdown),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sharpe => "sharpe",
            Self::Sortino => "sortino",
            Self::Calmar => "calmar",
            Self::Return => "return",
            Self::ReturnOverDrawdown => "return_over_drawdown",
        }
    }

    /// The figure, `None` when the statistics have none (NaN: e.g. no trade, flat equity).
    pub fn of(self, s: &Stats) -> Option<f64> {
        let v = match self {
            Self::Sharpe => s.sharpe_ratio,
            Self::Sortino => s.sortino_ratio,
            Self::Calmar => s.calmar_ratio,
            Self::Return => s.return_pct,
            Self::ReturnOverDrawdown => {
                let dd = s.max_drawdown_pct.abs();
                if dd > 0.0 {
                    s.return_pct / dd
                } else if s.return_pct > 0.0 {
                    f64::INFINITY
                } else {
                    s.return_pct
                }
            }
        };
        (!v.is_nan()).then_some(v)
    }
}

/// Ranking key: a trial without a figure ranks below every trial with one.
pub fn rank_key(v: Option<f64>) -> f64 {
    v.filter(|x| !x.is_nan()).unwrap_or(f64::NEG_INFINITY)
}
