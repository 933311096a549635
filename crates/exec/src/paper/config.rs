//! Fees, slippage, maintenance margin, fill timing and lot step of the paper broker.

use serde::{Deserialize, Serialize};

/// When a market order fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillAt {
    /// At the close of the bar it was decided on, the moment it arrives (the default).
    #[default]
    Close,
    /// At the open of the symbol's next bar: the order (entry or exit) is held and fills when
    /// that bar is marked, before the bar's resting limit order, stops and take-profits are
    /// checked, with slippage and the taker fee; like everything that happens on a bar, the
    /// fill carries the bar's close time. This is backtesting.py's convention
    /// (`trade_on_close=False`): a strategy sees a bar's close and its order executes at the
    /// next open. A bar that does not carry its open (messages from before it was carried)
    /// fills the held orders at the close of the bar they were decided on.
    NextOpen,
}

/// How the paper broker charges and fills. Every field has a default, so a configuration file
/// may set only some of them (`paper = { taker_fee = 0.001, slippage_bps = 0.0, fill_at =
/// "next_open", lot_step = 1e-8 }` in an `[[account]]`).
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
    /// `"close"` (default) or `"next_open"`: see [`FillAt`].
    pub fill_at: FillAt,
    /// Smallest quantity increment (e.g. 1e-8 for satoshis): the quantity of every order the
    /// book fills (entries, reductions, all-in sizes) is floored to a whole number of steps,
    /// and an order floored to nothing does nothing. Unset (default): quantities as sent.
    pub lot_step: Option<f64>,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            taker_fee: 0.0004,
            maker_fee: 0.0002,
            slippage_bps: 1.0,
            maintenance_margin_rate: 0.004,
            fill_at: FillAt::Close,
            lot_step: None,
        }
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
        if let Some(step) = self.lot_step
            && !(step.is_finite() && step > 0.0)
        {
            problems.push(format!("lot_step: must be a positive number, got {step}"));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// `quantity` floored to a whole number of lot steps (as is without a lot step).
    /// A quotient `quantity / step` within 4 ulps below a whole number counts as that number,
    /// so that a quantity that is a whole number of steps in decimal (0.3 with step 0.1, whose
    /// quotient is 2.9999999999999996 in binary) keeps its last step.
    pub fn floor_to_lot(&self, quantity: f64) -> f64 {
        match self.lot_step {
            Some(step) if quantity.is_finite() => floor_steps(quantity / step) * step,
            _ => quantity,
        }
    }

    /// Slippage as a fraction of the price (`slippage_bps / 10 000`).
    pub fn slippage(&self) -> f64 {
        self.slippage_bps / 10_000.0
    }
}

/// floor(x), except that an x within 4 ulps below a whole number counts as it.
fn floor_steps(x: f64) -> f64 {
    let nearest = x.round();
    if (nearest - x).abs() <= 4.0 * f64::EPSILON * x.abs().max(1.0) { nearest } else { x.floor() }
}
