//! Realistic sample rows and a write benchmark the CLI can call. Prints nothing.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::AuditError;
use crate::rows::{FillRow, Row, SignalRow};
use crate::sqlite_writer::SharedRows;
use crate::store::AuditStore;

/// What [`bench_rows`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchReport {
    pub rows: u64,
    pub inserted: u64,
    pub batches: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

/// A small deterministic generator (SplitMix64), so that samples need no dependency.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"];
const MODELS: [(&str, &str); 4] =
    [("rsi_reversion", "rule"), ("ema_cross", "rule"), ("xgb_v3", "ml"), ("analyst", "llm")];
const T0: i64 = 1_700_000_000_000;

/// `n` signal rows as the inference stage writes them (JSON scores, features and market
/// condition, ~1 KB each); ids start with `prefix`.
pub fn sample_signals(prefix: &str, n: usize) -> Vec<Row> {
    let mut g = Gen(n as u64 ^ 0x5eed);
    (0..n)
        .map(|i| {
            let symbol = SYMBOLS[i % SYMBOLS.len()];
            let (model, model_kind) = MODELS[(i / SYMBOLS.len()) % MODELS.len()];
            let open_time = T0 + (i / (SYMBOLS.len() * MODELS.len())) as i64 * 60_000;
            let candle_id = format!("{prefix}binance:{symbol}:1m:{open_time}");
            let close = 30_000.0 + g.unit() * 40_000.0;
            let action = g.pick(&["long", "short", "hold"]);
            let failed = i % 97 == 96;
            let (long, short) = (g.unit(), g.unit());
            let scores = format!(r#"{{"{model}":{:.6},"long":{long:.6},"short":{short:.6}}}"#, g.unit());
            let features = format!(
                concat!(
                    r#"{{"rsi_14":{:.4},"ema_12":{:.2},"ema_26":{:.2},"macd":{:.4},"macd_signal":{:.4},"#,
                    r#""atr_14":{:.4},"bb_upper":{:.2},"bb_lower":{:.2},"adx_14":{:.3},"volume_ratio":{:.4}}}"#
                ),
                g.unit() * 100.0,
                close * (1.0 + g.unit() / 100.0),
                close * (1.0 - g.unit() / 100.0),
                g.unit() - 0.5,
                g.unit() - 0.5,
                close * g.unit() / 50.0,
                close * 1.02,
                close * 0.98,
                g.unit() * 60.0,
                g.unit() * 3.0
            );
            let market = format!(
                concat!(
                    r#"{{"trend":"trending_up","phase":"active_trading","trend_strength":{:.3},"#,
                    r#""support":{:.2},"resistance":{:.2},"volatility":"normal","atr_pct":{:.5},"#,
                    r#""volume":"high","volume_ratio":{:.4}}}"#
                ),
                g.unit() * 60.0,
                close * 0.97,
                close * 1.03,
                g.unit() / 50.0,
                g.unit() * 3.0
            );
            let long_side = action == "long";
            SignalRow {
                id: format!("{candle_id}/{model}"),
                candle_id,
                symbol: symbol.to_string(),
                interval: "1m".to_string(),
                open_time,
                model: model.to_string(),
                model_kind: model_kind.to_string(),
                action: if failed { "hold" } else { action }.to_string(),
                confidence: g.unit(),
                status: if failed { "error" } else { "ok" }.to_string(),
                error: failed.then(|| "model timed out after 2000 ms".to_string()),
                reasoning: format!(
                    "RSI(14) and EMA(12/26) on {symbol} 1m point {action}; ADX says the trend is \
                     {}; volume is above its 20-bar average.",
                    if g.unit() > 0.5 { "strong" } else { "weak" }
                ),
                scores,
                features,
                market,
                stop_loss: (action != "hold").then_some(if long_side { close * 0.98 } else { close * 1.02 }),
                take_profit: (action != "hold").then_some(if long_side { close * 1.04 } else { close * 0.96 }),
                latency_us: (g.next() % 50_000) as i64,
            }
            .into()
        })
        .collect()
}

/// `n` fills of `account`, ids starting with `prefix`, times increasing.
pub fn sample_fills(prefix: &str, account: &str, n: usize) -> Vec<Row> {
    let mut g = Gen(n as u64 ^ 0xf111);
    (0..n)
        .map(|i| {
            let symbol = SYMBOLS[i % SYMBOLS.len()];
            let price = 30_000.0 + g.unit() * 40_000.0;
            let quantity = (g.unit() * 2.0 * 1000.0).round() / 1000.0 + 0.001;
            FillRow {
                id: format!("{prefix}{account}/fill/{i}"),
                order_id: format!("{prefix}{account}/order/{}", i / 2),
                account: account.to_string(),
                symbol: symbol.to_string(),
                side: if i % 2 == 0 { "buy" } else { "sell" }.to_string(),
                quantity,
                price,
                fee: price * quantity * 0.0004,
                realized_pnl: if i % 2 == 0 { 0.0 } else { (g.unit() - 0.5) * 200.0 },
                liquidity: "taker".to_string(),
                reason: if i % 2 == 0 { "entry" } else { "take_profit" }.to_string(),
                seq: i as i64 + 1,
                time: T0 + i as i64 * 1_000,
            }
            .into()
        })
        .collect()
}

/// Writes `rows` into `store` in batches of `batch` rows and measures the rate. The batches
/// are shared (as the audit worker hands them over) before the clock starts.
pub async fn bench_rows(store: &AuditStore, rows: &[Row], batch: usize) -> Result<BenchReport, AuditError> {
    let shared: Vec<SharedRows> = rows.chunks(batch.max(1)).map(|c| Arc::new(c.to_vec())).collect();
    let start = Instant::now();
    let mut inserted = 0;
    let mut batches = 0;
    for chunk in &shared {
        inserted += store.write_shared(std::slice::from_ref(chunk)).await?.inserted;
        batches += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let n = rows.len() as u64;
    Ok(BenchReport {
        rows: n,
        inserted,
        batches,
        seconds,
        rows_per_sec: if seconds > 0.0 { n as f64 / seconds } else { f64::INFINITY },
    })
}

/// Connects to `url` and writes `rows_total` fresh sample signal rows (ids unique to this run)
/// in batches of `batch`; returns the rows written per second (only the writes are timed).
pub async fn bench_write(url: &str, rows_total: usize, batch: usize) -> Result<f64, AuditError> {
    let store = AuditStore::connect(url).await?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let rows = sample_signals(&format!("bench-{nanos}/"), rows_total);
    let report = bench_rows(&store, &rows, batch).await;
    store.close().await;
    Ok(report?.rows_per_sec)
}
