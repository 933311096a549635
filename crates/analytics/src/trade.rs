//! The inputs of a run's analytics: its bars and its round-trip trades.

use serde::{Deserialize, Serialize};

use crate::num::finite_or_null;

/// One bar of the run. `time_ms` is the bar's OPEN time (ms since the epoch, UTC), which is
/// also the time backtesting.py gives a fill at that bar's open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Long,
    Short,
}

impl Side {
    /// +1 for a long, −1 for a short: backtesting.py's signed size is `sign × size`.
    pub fn sign(self) -> f64 {
        match self {
            Side::Long => 1.0,
            Side::Short => -1.0,
        }
    }
}

/// Why a trade was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The strategy's own signal.
    Signal,
    StopLoss,
    TakeProfit,
    TrailingStop,
    Liquidation,
    /// Still open after the last bar, closed by the run (backtesting.py's `finalize_trades`).
    End,
}

/// One side of a round trip: where (bar row, 0-based), when, at what price, for what commission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    pub bar: usize,
    pub time_ms: i64,
    pub price: f64,
    pub commission: f64,
}

/// A round-trip trade: one entry, one exit. `size` is in units of the asset and positive;
/// `side` says which way (backtesting.py writes a short as a negative size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub side: Side,
    #[serde(serialize_with = "finite_or_null")]
    pub size: f64,
    /// Rows of the bars the trade entered and exited at (0-based).
    pub entry_bar: usize,
    pub exit_bar: usize,
    pub entry_time_ms: i64,
    pub exit_time_ms: i64,
    #[serde(serialize_with = "finite_or_null")]
    pub entry_price: f64,
    #[serde(serialize_with = "finite_or_null")]
    pub exit_price: f64,
    /// Net of every commission and fee: `sign × size × (exit − entry) − commission`.
    #[serde(serialize_with = "finite_or_null")]
    pub pnl: f64,
    /// All commissions and fees of the round trip (entry and exit).
    #[serde(serialize_with = "finite_or_null")]
    pub commission: f64,
    /// The part of `commission` charged at entry: it leaves the cash while the trade is open,
    /// so the equity curve needs it.
    #[serde(serialize_with = "finite_or_null")]
    pub entry_commission: f64,
    /// backtesting.py's `Trade.pl_pct`, in percent: `sign × (exit / entry − 1)` less the
    /// commission per unit of entry value, `commission / (size × entry)`.
    #[serde(serialize_with = "finite_or_null")]
    pub return_pct: f64,
    /// `exit_time_ms − entry_time_ms`.
    pub duration_ms: i64,
    pub exit_reason: ExitReason,
}

impl Trade {
    /// The trade made of an entry and an exit fill, with pnl, return and duration by
    /// backtesting.py's definitions.
    pub fn from_fills(side: Side, size: f64, entry: Fill, exit: Fill, exit_reason: ExitReason) -> Trade {
        let commission = entry.commission + exit.commission;
        let gross = side.sign() * size * (exit.price - entry.price);
        let return_pct = (side.sign() * (exit.price / entry.price - 1.0) - commission / (size * entry.price)) * 100.0;
        Trade {
            side,
            size,
            entry_bar: entry.bar,
            exit_bar: exit.bar,
            entry_time_ms: entry.time_ms,
            exit_time_ms: exit.time_ms,
            entry_price: entry.price,
            exit_price: exit.price,
            pnl: gross - commission,
            commission,
            entry_commission: entry.commission,
            return_pct,
            duration_ms: exit.time_ms - entry.time_ms,
            exit_reason,
        }
    }

    /// backtesting.py's signed `Size`.
    pub fn signed_size(&self) -> f64 {
        self.side.sign() * self.size
    }

    /// The trade's profit had it been closed at `price` (before its exit commission):
    /// `sign × size × (price − entry)`, what backtesting.py counts as unrealised.
    pub fn unrealised_at(&self, price: f64) -> f64 {
        self.signed_size() * (price - self.entry_price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_by_backtesting_py_definitions() {
        // First trade of the reference run: 4.07822092 units, 2449.6 → 2482.09, commission
        // 0.001 of each fill's value. Its pnl and return in the reference trades file are
        // 112.38887636184556 and 1.1250126551273685 %.
        let size = 4.07822092;
        let entry = Fill { bar: 25, time_ms: 1_498_996_800_000, price: 2449.6, commission: 0.001 * size * 2449.6 };
        let exit = Fill { bar: 48, time_ms: 1_499_079_600_000, price: 2482.09, commission: 0.001 * size * 2482.09 };
        let t = Trade::from_fills(Side::Long, size, entry, exit, ExitReason::Signal);
        assert!((t.pnl / 112.38887636184556 - 1.0).abs() < 1e-12);
        assert!((t.return_pct / 1.1250126551273685 - 1.0).abs() < 1e-12);
        assert!((t.commission / 20.1125213289548 - 1.0).abs() < 1e-12);
        assert_eq!(t.duration_ms, 23 * 3_600_000);
    }

    #[test]
    fn a_short_gains_when_the_price_falls() {
        // 2 units short 100 → 90, fees 1 + 1: pnl = 2 × 10 − 2 = 18;
        // return = (−(90/100 − 1) − 2 / (2 × 100)) × 100 = (0.1 − 0.01) × 100 = 9 %.
        let f = |bar, price| Fill { bar, time_ms: bar as i64 * 60_000, price, commission: 1.0 };
        let t = Trade::from_fills(Side::Short, 2.0, f(1, 100.0), f(3, 90.0), ExitReason::TakeProfit);
        assert!((t.pnl - 18.0).abs() < 1e-12);
        assert!((t.return_pct - 9.0).abs() < 1e-12);
        assert_eq!(t.signed_size(), -2.0);
        assert_eq!(t.unrealised_at(95.0), 10.0);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["side"], "short");
        assert_eq!(json["exit_reason"], "take_profit");
        for key in [
            "entry_bar",
            "exit_bar",
            "entry_time_ms",
            "exit_time_ms",
            "entry_price",
            "exit_price",
            "size",
            "pnl",
            "commission",
            "return_pct",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }
}
