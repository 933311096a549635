//! The indicator set as a stage uses it: warm-up rows, flat and zero-volume markets, refusal of
//! out-of-order candles, reset, and checkpoint round trips. No reference files needed.

use tradeflow_indicators::{Bar, COLUMNS, IndicatorError, IndicatorRow, IndicatorSet, Next, Reset};

const HOUR: i64 = 3_600_000;

/// A deterministic random walk with ranges and volumes (including some zero volumes).
fn walk(n: usize) -> Vec<Bar> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut close = 5000.0;
    (0..n)
        .map(|i| {
            let open = close;
            close = (close * (1.0 + (rand() - 0.5) * 0.02)).max(1.0);
            let high = open.max(close) * (1.0 + rand() * 0.005);
            let low = open.min(close) * (1.0 - rand() * 0.005);
            let volume = if i % 17 == 3 { 0.0 } else { rand() * 100.0 };
            Bar::new(i as i64 * HOUR, open, high, low, close, volume).expect("a valid bar")
        })
        .collect()
}

fn flat(n: usize, price: f64, volume: f64) -> Vec<Bar> {
    (0..n).map(|i| Bar::new(i as i64 * HOUR, price, price, price, price, volume).expect("a valid bar")).collect()
}

fn run(set: &mut IndicatorSet, candles: &[Bar]) -> Vec<IndicatorRow> {
    candles.iter().map(|c| set.next(c).expect("in order")).collect()
}

/// Bitwise equality, so that a difference in the last bit (or -0.0 against 0.0) shows.
fn bits(row: &IndicatorRow) -> Vec<Option<u64>> {
    row.values().iter().chain(&[row.volume_sma_20, row.volume_ratio_20]).map(|v| v.map(f64::to_bits)).collect()
}

#[test]
fn first_rows_are_talibs() {
    // CONVENTIONS.md: the first row where each column exists.
    let first = [19, 49, 8, 11, 20, 25, 49, 14, 33, 33, 33, 25, 19, 19, 19, 1, 14, 17, 17, 15, 15, 13, 27, 14, 14, 0];
    let rows = run(&mut IndicatorSet::new(), &walk(80));
    for (k, column) in COLUMNS.iter().enumerate() {
        let got = rows.iter().position(|r| r.values()[k].is_some());
        assert_eq!(got, Some(first[k]), "column {column}");
        assert!(rows[first[k]..].iter().all(|r| r.values()[k].is_some()), "column {column} has a gap");
    }
    assert_eq!(rows.iter().position(|r| r.volume_sma_20.is_some()), Some(19));
}

#[test]
fn a_flat_market_without_volume() {
    let rows = run(&mut IndicatorSet::new(), &flat(60, 3775.13, 0.0));
    let last = rows.last().unwrap();
    assert_eq!(last.stoch_rawk_14, Some(0.0), "raw %K is 0 when high = low");
    assert_eq!((last.stoch_slowk_14_3_3, last.stochf_fastd_14_3), (Some(0.0), Some(0.0)));
    assert_eq!(last.rsi_14, Some(0.0), "RSI is 0 without gains and losses");
    assert_eq!(
        (last.bb_upper_20_2, last.bb_middle_20_2, last.bb_lower_20_2),
        (Some(3775.13), Some(3775.13), Some(3775.13))
    );
    assert_eq!((last.trange, last.atr_14), (Some(0.0), Some(0.0)));
    assert_eq!((last.plus_di_14, last.minus_di_14, last.adx_14), (Some(0.0), Some(0.0), Some(0.0)));
    // TA-Lib's MACD on a flat market is 0 only up to rounding: its fast EMA is seeded with the mean
    // of 12 closes, the slow one with the mean of 26.
    assert!([last.macd_12_26_9, last.macd_hist_12_26_9].iter().all(|v| v.is_some_and(|v| v.abs() < 1e-9)));
    assert_eq!(last.obv, Some(0.0));
    assert_eq!(last.volume_sma_20, Some(0.0));
    assert_eq!(last.volume_ratio_20, None, "no ratio to an average of 0");
    assert!(rows.iter().all(|r| r.values().iter().flatten().all(|v| v.is_finite())));
}

#[test]
fn zero_volume_bars_amid_trading() {
    let mut candles = walk(40);
    // An outage: four flat bars at the last close, without volume, as exchanges export them.
    let close = candles[39].close();
    for i in 40..44 {
        candles.push(Bar::new(i * HOUR, close, close, close, close, 0.0).unwrap());
    }
    let rows = run(&mut IndicatorSet::new(), &candles);
    let before = &rows[39];
    for row in &rows[40..] {
        assert_eq!(row.obv, before.obv, "OBV does not move on an unchanged close");
        assert_eq!(row.volume_ratio_20, Some(0.0), "no volume against a positive average");
        assert!(row.volume_sma_20.is_some_and(|v| v > 0.0));
    }
}

#[test]
fn out_of_order_candles_are_refused_and_change_nothing() {
    let candles = walk(50);
    let mut set = IndicatorSet::new();
    run(&mut set, &candles[..30]);
    let mut untouched = set.clone();
    let err = set.next(&candles[29]).unwrap_err();
    assert_eq!(err, IndicatorError::OutOfOrder { previous: 29 * HOUR, open_time: 29 * HOUR });
    assert!(set.next(&candles[3]).is_err());
    assert_eq!(set.last_open_time(), Some(29 * HOUR));
    assert_eq!(bits(&set.next(&candles[30]).unwrap()), bits(&untouched.next(&candles[30]).unwrap()));
}

#[test]
fn reset_restarts_the_warm_up() {
    let candles = walk(60);
    let mut set = IndicatorSet::new();
    let first: Vec<_> = run(&mut set, &candles).iter().map(bits).collect();
    set.reset();
    assert_eq!(set.last_open_time(), None);
    let again: Vec<_> = run(&mut set, &candles).iter().map(bits).collect();
    assert_eq!(first, again, "after reset the same candles give the same rows, warm-up included");
    let fresh = IndicatorSet::new().next(&candles[0]).unwrap();
    assert_eq!(bits(&fresh), first[0]);
}

#[test]
fn a_checkpoint_continues_identically() {
    let candles = walk(400);
    let mut set = IndicatorSet::new();
    run(&mut set, &candles[..217]);
    let bytes = rmp_serde::to_vec(&set).expect("serializes");
    let mut restored: IndicatorSet = rmp_serde::from_slice(&bytes).expect("deserializes");
    for c in &candles[217..] {
        assert_eq!(bits(&set.next(c).unwrap()), bits(&restored.next(c).unwrap()), "at {}", c.open_time());
    }
    // A checkpoint taken during warm-up, too.
    let mut early = IndicatorSet::new();
    run(&mut early, &candles[..7]);
    let mut restored: IndicatorSet = rmp_serde::from_slice(&rmp_serde::to_vec(&early).unwrap()).unwrap();
    assert_eq!(run(&mut early, &candles[7..]), run(&mut restored, &candles[7..]));
    eprintln!("checkpoint size: {} bytes of MessagePack", bytes.len());
}

#[test]
fn row_field_names_are_the_columns_in_order() {
    let rows = run(&mut IndicatorSet::new(), &walk(80));
    // Three pairs are equal by definition once both exist: fast %K and raw %K, slow %K and fast
    // %D, the MACD line and the line alone. Rows 14, 16 and 30 tell each pair apart.
    for row in [&rows[14], &rows[16], &rows[30], &rows[79]] {
        let json = serde_json::to_value(row).unwrap();
        let values = row.values();
        for (k, column) in COLUMNS.iter().enumerate() {
            let field = json.get(column).unwrap_or_else(|| panic!("no field {column}"));
            assert_eq!(field.as_f64(), values[k], "column {column} (index {k})");
        }
    }
    let distinct: std::collections::HashSet<u64> = rows[79].values().iter().flatten().map(|v| v.to_bits()).collect();
    assert_eq!(distinct.len(), 23, "values too alike to check the order");
}
