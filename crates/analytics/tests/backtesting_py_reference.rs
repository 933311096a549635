//! The reference run: backtesting.py 0.6.6's SMA(10)/SMA(20) crossover (long-only, all-in, cash
//! 10,000, commission 0.001) on the bundled hourly BTC/USD bars. From its trade list and the bars
//! this rebuilds the per-bar equity with `equity_curve`, computes the statistics with
//! `compute_stats`, and compares each with backtesting.py's: within 1e-6 relative, durations and
//! times exactly (as strings and as milliseconds).
//!
//! Files (in the repository): `demo/btcusd_1h.csv` (the bars) and
//! `tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001{.json,_trades.csv}`.

use std::path::PathBuf;

use serde_json::Value;
use tradeflow_analytics::{
    Bar, ExitReason, Fill, Side, Span, StatsOptions, Trade, compute_stats, drawdown, equity_curve,
};

const REL: f64 = 1e-6;
const COMMISSION: f64 = 0.001;
const CASH: f64 = 10_000.0;
/// First row where SMA(20) exists: backtesting.py's indicator warm-up, where buy & hold starts.
const FIRST_TRADING_BAR: usize = 19;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_file(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rows of a CSV with a header, as maps from column name to cell.
fn csv(text: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().expect("a header").split(',').map(str::to_owned).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| header.iter().cloned().zip(l.split(',').map(str::to_owned)).collect())
        .collect()
}

fn cell<T: std::str::FromStr>(row: &[(String, String)], name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let v = &row.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("column {name}")).1;
    v.parse().unwrap_or_else(|e| panic!("{name} = {v}: {e:?}"))
}

fn bars() -> Vec<Bar> {
    csv(&read("demo/btcusd_1h.csv"))
        .iter()
        .map(|r| Bar {
            time_ms: cell(r, "timestamp"),
            open: cell(r, "open"),
            high: cell(r, "high"),
            low: cell(r, "low"),
            close: cell(r, "close"),
        })
        .collect()
}

fn rel_err(ours: f64, theirs: f64) -> f64 {
    if ours == theirs { 0.0 } else { (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE) }
}

/// "837 days 22:00:00" (pandas' `str(Timedelta)`, whole seconds) → milliseconds.
fn timedelta_ms(s: &str) -> i64 {
    let (days, clock) = s.split_once(" days ").unwrap_or_else(|| panic!("not a timedelta: {s}"));
    let hms: Vec<i64> = clock.split(':').map(|x| x.parse().expect("a clock field")).collect();
    let days: i64 = days.parse().expect("days");
    ((days * 24 + hms[0]) * 60 + hms[1]) * 60_000 + hms[2] * 1_000
}

/// The reference trades, rebuilt from their fills (each side charged 0.001 of its value), with
/// the file's own pnl, commission and return checked against the rebuilt ones.
fn trades(bars: &[Bar]) -> Vec<Trade> {
    let rows = csv(&read("tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001_trades.csv"));
    let mut worst: f64 = 0.0;
    let trades: Vec<Trade> = rows
        .iter()
        .map(|r| {
            let size: f64 = cell(r, "size");
            let fill = |bar: &str, time: &str, price: &str| {
                let (bar, price): (usize, f64) = (cell(r, bar), cell(r, price));
                Fill { bar, time_ms: cell(r, time), price, commission: COMMISSION * size * price }
            };
            let entry = fill("entry_bar", "entry_time_ms", "entry_price");
            let exit = fill("exit_bar", "exit_time_ms", "exit_price");
            // Fills are at the bar's open time; the run closes what is open at the last bar.
            assert_eq!(entry.time_ms, bars[entry.bar].time_ms);
            assert_eq!(exit.time_ms, bars[exit.bar].time_ms);
            let reason = if exit.bar == bars.len() - 1 { ExitReason::End } else { ExitReason::Signal };
            let t = Trade::from_fills(Side::Long, size, entry, exit, reason);
            for (ours, column) in [(t.pnl, "pnl"), (t.commission, "commission"), (t.return_pct, "return_pct")] {
                worst = worst.max(rel_err(ours, cell(r, column)));
            }
            t
        })
        .collect();
    assert!(worst < 1e-9, "trade columns off by {worst:e} relative");
    eprintln!("trades: pnl, commission, return_pct within {worst:e} relative of the file");
    trades
}

#[test]
fn reproduces_backtesting_py_on_the_reference_run() {
    let bars = bars();
    assert_eq!(bars.len(), 20_111);
    let trades = trades(&bars);
    assert_eq!(trades.len(), 545);
    assert_eq!(trades.last().map(|t| t.exit_reason), Some(ExitReason::End));

    let equity = equity_curve(&bars, &trades, CASH).expect("a valid run");
    let options = StatsOptions { first_trading_bar: FIRST_TRADING_BAR, risk_free_rate: 0.0 };
    let stats = compute_stats(&bars, &trades, &equity, &options).expect("stats");
    let ours = serde_json::to_value(&stats).expect("json");
    let theirs: Value =
        serde_json::from_str(&read("tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001.json")).expect("json");

    // Every backtesting.py statistic (the reference file's keys up to "Kelly Criterion"; what
    // follows it there is the generator's own), in backtesting.py's order. serde_json's map is
    // sorted, so the order is read from the texts.
    let their_text = read("tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001.json");
    let ours_text = serde_json::to_string(&stats).expect("json");
    let order = |text: &str| {
        let mut keys: Vec<(usize, String)> = theirs
            .as_object()
            .expect("an object")
            .keys()
            .filter_map(|k| text.find(&format!("\"{k}\":")).map(|at| (at, k.clone())))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    let their_keys = order(&their_text);
    let end = their_keys.iter().position(|k| k == "Kelly Criterion").expect("Kelly Criterion") + 1;
    let their_keys = &their_keys[..end];
    assert_eq!(order(&ours_text), their_keys, "keys and their order");
    assert_eq!(ours.as_object().expect("an object").len(), end, "no other keys");

    let mut failures = Vec::new();
    for key in their_keys {
        let (a, b) = (&ours[key.as_str()], &theirs[key.as_str()]);
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
                let e = rel_err(x, y);
                eprintln!("{key:>24}: ours {x:<22} theirs {y:<22} relative error {e:.1e}");
                if e > REL {
                    failures.push(format!("{key}: {x} vs {y} ({e:e})"));
                }
            }
            (Value::String(x), Value::String(y)) => {
                eprintln!("{key:>24}: ours {x:<22} theirs {y}");
                if x != y {
                    failures.push(format!("{key}: {x} vs {y}"));
                }
            }
            _ => failures.push(format!("{key}: {a} vs {b}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The durations as milliseconds too.
    let ms = |key: &str| timedelta_ms(theirs[key].as_str().expect("a string"));
    assert_eq!(stats.duration, Span(ms("Duration")));
    assert_eq!(stats.max_drawdown_duration, Some(Span(ms("Max. Drawdown Duration"))));
    assert_eq!(stats.avg_drawdown_duration, Some(Span(ms("Avg. Drawdown Duration"))));
    assert_eq!(stats.max_trade_duration, Some(Span(ms("Max. Trade Duration"))));
    assert_eq!(stats.avg_trade_duration, Some(Span(ms("Avg. Trade Duration"))));
    assert_eq!(stats.duration.ms(), 837 * 86_400_000 + 22 * 3_600_000);
    assert_eq!(stats.start.ms(), bars[0].time_ms);

    // The equity curve ends on the cash the reference's own replay ended with, and its drawdown
    // is the reported maximum.
    let final_cash = theirs["independent_replay_final_cash"].as_f64().expect("f64");
    assert!(rel_err(equity[equity.len() - 1], final_cash) < 1e-12);
    let max_dd = drawdown(&equity).into_iter().fold(0.0, f64::max);
    assert!(rel_err(-max_dd * 100.0, theirs["Max. Drawdown [%]"].as_f64().expect("f64")) < REL);
}
