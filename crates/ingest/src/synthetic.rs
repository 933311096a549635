//! Synthetic bars for load tests: a seeded geometric random walk per symbol, so a run is
//! reproducible from its seed.

use crate::stage::RawBar;

/// Generates consecutive bars of one symbol.
#[derive(Debug, Clone)]
pub struct RandomWalk {
    rng: fastrand::Rng,
    price: f64,
    next_open_time: i64,
    interval_ms: i64,
    /// Standard deviation of one bar's log return.
    volatility: f64,
}

impl RandomWalk {
    pub fn new(seed: u64, start_price: f64, start_time: i64, interval_ms: i64, volatility: f64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            price: start_price,
            next_open_time: start_time,
            interval_ms,
            volatility,
        }
    }

    /// Approximately normal noise (sum of 12 uniforms minus 6): cheap and good enough here.
    fn noise(&mut self) -> f64 {
        (0..12).map(|_| self.rng.f64()).sum::<f64>() - 6.0
    }

    pub fn next_bar(&mut self) -> RawBar {
        let open = self.price;
        let close = open * (self.volatility * self.noise()).exp();
        let wick_up = open.max(close) * (self.volatility * 0.5 * self.rng.f64()).exp();
        let wick_down = open.min(close) * (-self.volatility * 0.5 * self.rng.f64()).exp();
        let volume = 1.0 + 100.0 * self.rng.f64();
        let bar = RawBar { open_time: self.next_open_time, open, high: wick_up, low: wick_down, close, volume };
        self.price = close;
        self.next_open_time += self.interval_ms;
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::market::Bar;

    #[test]
    fn walks_are_valid_reproducible_and_consecutive() {
        let mut a = RandomWalk::new(7, 100.0, 0, 60_000, 0.01);
        let mut b = RandomWalk::new(7, 100.0, 0, 60_000, 0.01);
        for i in 0..10_000 {
            let (x, y) = (a.next_bar(), b.next_bar());
            assert_eq!(x, y);
            assert_eq!(x.open_time, i * 60_000);
            Bar::new(x.open_time, x.open, x.high, x.low, x.close, x.volume).expect("synthetic bars are valid");
        }
    }
}
