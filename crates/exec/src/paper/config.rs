//! Fees, slippage and maintenance margin of the paper broker.

use serde::{Deserialize, Serialize};

/// How the paper broker charges and fills. Every field has a default, so a configuration file
/// may set only some of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Fee rate of market orders, stops, take-profits and liquidations (0.0004 = 0.04 %).
    pub taker_fee: f64,
    /// Fee rate of resting limit orders (0.0002 = 0.02 %).
    pub maker_fee: f64,
    /// Slippage of market orders and stops, in basis points, always against the account
    /// (1.0 = 0.01 %).
    pub slippage_bps: f64,
    /// Maintenance margin rate used for the liquidation price (0.004 = 0.4 %).
    pub maintenance_margin_rate: f64,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self { taker_fee: 0.0004, maker_fee: 0.0002, slippage_bps: 1.0, maintenance_margin_rate: 0.004 }
    }
}

impl PaperConfig {
    /// Every problem, each naming its field (`taker_fee: must be within [0, 0.01], got 0.02`).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (name, fee) in [("taker_fee", self.taker_fee), ("maker_fee", self.maker_fee)] {
            if !(0.0..=0.01).contains(&fee) {
                problems.push(format!("{name}: must be within [0, 0.01], got {fee}"));
            }
        }
        if !(0.0..=500.0).contains(&self.slippage_bps) {
            problems.push(format!("slippage_bps: must be within [0, 500], got {}", self.slippage_bps));
        }
        if !(0.0..0.5).contains(&self.maintenance_margin_rate) {
            problems.push(format!(
                "maintenance_margin_rate: must be within [0, 0.5), got {}",
                self.maintenance_margin_rate
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Slippage as a fraction of the price (`slippage_bps / 10 000`).
    pub fn slippage(&self) -> f64 {
        self.slippage_bps / 10_000.0
    }
}
