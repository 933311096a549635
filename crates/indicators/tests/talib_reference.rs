//! Every row and every column of the TA-Lib reference files in `tests/data`: empty exactly where ours
//! is `None` (warm-up), otherwise within 1e-9 relative (see `support/reference.rs`).

mod support;

use std::fs::File;
use std::io::BufReader;

use support::reference::{ColumnStats, Table, compare_row, market, report, test_data};
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_indicators::{Bar, COLUMNS, IndicatorSet, Next};

fn bars(interval: &str) -> Vec<Bar> {
    let path = market(interval);
    let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let reader = CandleReader::new(BufReader::new(file)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader.bars().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(interval: &str) {
    let candles = bars(interval);
    let path = test_data(&format!("reference/talib_btcusd_{interval}.csv"));
    let reference = Table::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let expected_header: Vec<&str> = ["timestamp", "close"].into_iter().chain(COLUMNS).collect();
    assert_eq!(reference.header, expected_header, "{}: unexpected columns", path.display());
    assert_eq!(candles.len(), reference.rows.len(), "{}: not one reference row per candle", path.display());

    let mut set = IndicatorSet::new();
    let mut stats = [ColumnStats::default(); 26];
    for (i, (candle, expected)) in candles.iter().zip(&reference.rows).enumerate() {
        assert_eq!(
            (candle.open_time(), Some(candle.close())),
            (expected.timestamp, expected.cells[0]),
            "row {i}: the reference row is not this candle's"
        );
        let row = set.next(candle).unwrap_or_else(|e| panic!("row {i}: {e}"));
        if let Err(e) = compare_row(i, expected.line, &COLUMNS, &row.values(), &expected.cells[1..], &mut stats) {
            panic!("{}: first mismatch at {e}", path.display());
        }
    }
    eprintln!("{}", report(&path.display().to_string(), &COLUMNS, &stats));
}

#[test]
fn matches_talib_on_btcusd_1h() {
    check("1h");
}

#[test]
fn matches_talib_on_btcusd_1d() {
    check("1d");
}

/// Running sums over a long stream: the 1h file 25 times over (half a million candles), the
/// SMAs and Bollinger's band and σ checked on every row against an exact recomputation of the
/// window. (ta's Bollinger, whose error grows with the stream, fails this for σ.)
#[test]
fn running_sums_do_not_drift_over_half_a_million_candles() {
    let base = bars("1h");
    let span = base.last().map_or(0, |c| c.open_time()) - base[0].open_time() + 3_600_000;
    let mut set = IndicatorSet::new();
    let mut closes = Vec::new();
    let mut volumes = Vec::new();
    let mut worst = [0.0f64; 5];
    for pass in 0..25 {
        for c in &base {
            let c = Bar::new(c.open_time() + pass * span, c.open(), c.high(), c.low(), c.close(), c.volume())
                .expect("the same bar, later");
            let row = set.next(&c).expect("open times increase");
            closes.push(c.close());
            volumes.push(c.volume());
            let n = closes.len();
            if n < 50 {
                continue;
            }
            let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
            let window = &closes[n - 20..];
            let m20 = mean(window);
            let sigma = (window.iter().map(|x| (x - m20).powi(2)).sum::<f64>() / 20.0).sqrt();
            let checks = [
                (row.sma_20, m20),
                (row.sma_50, mean(&closes[n - 50..])),
                (row.bb_upper_20_2, m20 + 2.0 * sigma),
                (row.volume_sma_20, mean(&volumes[n - 20..])),
                (row.bb_upper_20_2.zip(row.bb_middle_20_2).map(|(u, m)| (u - m) / 2.0), sigma),
            ];
            for (k, (ours, exact)) in checks.into_iter().enumerate() {
                let ours = ours.expect("warmed up");
                worst[k] = worst[k].max((ours - exact).abs() / exact.abs().max(1.0));
            }
            if n > 100 {
                closes.drain(..50);
                volumes.drain(..50);
            }
        }
    }
    eprintln!("worst relative error over 25 passes (sma_20, sma_50, bb_upper, volume_sma_20, bb sigma): {worst:?}");
    assert!(worst.iter().all(|&e| e <= 1e-9), "{worst:?}");
}
