//! Live parity: the same candles and configuration through `tradeflow up --exit-when-drained`
//! (embedded Redis, every stage, the SQLite audit store) and through the backtester give the
//! same decisions, orders, rejections, fills and balance rows, ids and values, row for row.
//!
//! The backtest's rows are made by the audit store's own mapping from the backtest's messages
//! (`tradeflow_backtest::Records`), so any difference is a difference in what the stages did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tradeflow_audit::{AuditStore, Row, Table};
use tradeflow_backtest::{BacktestConfig, Records};
use tradeflow_core::market::Interval;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_inference::stage::StageConfig;
use tradeflow_ingest::timeline::Feed;
use tradeflow_risk::{AccountConfig, parse_accounts};

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
const TABLES: &[Table] = &[Table::Decision, Table::Order, Table::Rejection, Table::Fill, Table::Balance];

/// Runs `up` to completion in `dir` and reads back the rows of [`TABLES`].
async fn live(dir: &Path, streams: &Path, args: &[String]) -> BTreeMap<Table, Vec<Row>> {
    let data = dir.join("data");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["up", "--exit-when-drained", "--no-edge", "--data-dir", data.to_str().unwrap()])
        .args(args)
        .env("TRADEFLOW_STREAMS", streams)
        .env_remove("REDIS_URL")
        .env_remove("TRADEFLOW_CONFIG")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output()).await.expect("up did not finish").unwrap();
    assert!(
        out.status.success(),
        "up failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let store = AuditStore::connect(&format!("sqlite://{}", data.join("tradeflow.db").display())).await.unwrap();
    let mut rows = BTreeMap::new();
    for &t in TABLES {
        let mut r = store.rows(t, i64::MAX, 0).await.unwrap();
        r.sort_by(|a, b| a.id().cmp(b.id()));
        rows.insert(t, r);
    }
    store.close().await;
    rows
}

fn backtest(config: &BacktestConfig) -> BTreeMap<Table, Vec<Row>> {
    let mut records = Records::new(TABLES);
    tradeflow_backtest::run(config, &mut records).unwrap();
    assert_eq!(records.error, None);
    let mut rows: BTreeMap<Table, Vec<Row>> = TABLES.iter().map(|t| (*t, Vec::new())).collect();
    for r in records.rows {
        rows.entry(r.table()).or_default().push(r);
    }
    for r in rows.values_mut() {
        r.sort_by(|a, b| a.id().cmp(b.id()));
    }
    rows
}

/// Every table equal; on a difference, the first differing row of each table.
fn assert_same(live: &BTreeMap<Table, Vec<Row>>, backtest: &BTreeMap<Table, Vec<Row>>) {
    let mut problems = Vec::new();
    for &t in TABLES {
        let (l, b) = (&live[&t], &backtest[&t]);
        if l.len() != b.len() {
            problems.push(format!("{}: {} rows live, {} in the backtest", t.name(), l.len(), b.len()));
        }
        if let Some((x, y)) = l.iter().zip(b).find(|(x, y)| x != y) {
            problems.push(format!("{}: first difference\n  live:     {x:?}\n  backtest: {y:?}", t.name()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The comparison is about something: the run traded.
    assert!(!live[&Table::Fill].is_empty() && !live[&Table::Decision].is_empty());
}

fn feed(path: &Path, symbol: &str) -> Feed {
    Feed::csv(path, symbol, Interval::H1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_feed_gives_the_same_rows_live_and_in_a_backtest() {
    let dir = tempfile::tempdir().unwrap();
    // `up`'s defaults: the demo feed as BTCUSD, the technical model, its profile and one paper
    // account following it; the streams of the repository (8 partitions).
    let live = live(dir.path(), Path::new(STREAMS), &[]).await;
    let profiles = parse_profiles(
        "[[profile]]\nname = \"technical\"\nmodels = { technical = 1.0 }\nmethod = \"confidence_weighted_mean\"\n",
    )
    .unwrap();
    let config = BacktestConfig {
        feeds: vec![feed(Path::new(DEMO), "BTCUSD")],
        aggregate: Vec::new(),
        inference: StageConfig::default(),
        analysts: Vec::new(),
        accounts: vec![AccountConfig::paper("paper-technical", "technical", 10_000.0)],
        profiles,
        strict: false,
        from_ms: None,
        to_ms: None,
    };
    assert_same(&live, &backtest(&config));
}

/// A second symbol made from the demo feed's first rows: prices × 0.031, so its indicators
/// and decisions differ, and one row out of order to be refused.
fn second_symbol(dir: &Path, rows: usize) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(DEMO).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut btc, mut alt) = (format!("{header}\n"), format!("{header}\n"));
    for (i, line) in lines.take(rows).enumerate() {
        btc.push_str(line);
        btc.push('\n');
        let f: Vec<&str> = line.split(',').collect();
        let p = |k: usize| f[k].parse::<f64>().unwrap() * 0.031;
        // Row 500 repeats row 499's time: ingestion refuses it, live and in the backtest.
        let t: i64 = f[0].parse::<i64>().unwrap() - if i == 500 { 3_600_000 } else { 0 };
        alt.push_str(&format!("{t},{},{},{},{},{}\n", p(1), p(2), p(3), p(4), f[5].parse::<f64>().unwrap() * 20.0));
    }
    let (a, b) = (dir.join("btcusd.csv"), dir.join("altusd.csv"));
    std::fs::write(&a, btc).unwrap();
    std::fs::write(&b, alt).unwrap();
    (a, b)
}

const PROFILES: &str = "[[profile]]\nname = \"technical\"\nmodels = { technical = 1.0 }\nmethod = \"confidence_weighted_mean\"\n\n\
[[profile]]\nname = \"committee\"\nmodels = { rsi = 1.0, macd = 1.0, bollinger = 1.0 }\nmethod = \"weighted_vote\"\n";

const ACCOUNTS: &str = "[[account]]\nid = \"trend\"\nprofile = \"technical\"\nstarting_balance = 10000\n\
sizing = { method = \"fixed_fraction\", fraction = 0.2 }\n[account.risk]\ncooldown_after_losses = 0\n\n\
[[account]]\nid = \"votes\"\nprofile = \"committee\"\nstarting_balance = 5000\nleverage = 2\ntrailing_stop_pct = 0.03\n\
sizing = { method = \"fixed_fraction\", fraction = 0.3 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_symbols_two_profiles_and_two_accounts_give_the_same_rows_live_and_in_a_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let (btc, alt) = second_symbol(dir.path(), 3_000);
    let profiles_path = dir.path().join("profiles.toml");
    let accounts_path = dir.path().join("accounts.toml");
    std::fs::write(&profiles_path, PROFILES).unwrap();
    std::fs::write(&accounts_path, ACCOUNTS).unwrap();
    // Across symbols, the order live is the order of arrival: one partition for candles and
    // signals makes it the replay's (docs/backtest.md).
    let streams = std::fs::read_to_string(STREAMS)
        .unwrap()
        .replace("[streams.\"md.candles\"]\n", "[streams.\"md.candles\"]\npartitions = 1\n")
        .replace("[streams.\"inf.signals\"]\n", "[streams.\"inf.signals\"]\npartitions = 1\n");
    assert_eq!(streams.matches("partitions = 1\n").count(), 4, "streams.toml changed shape");
    let streams_path = dir.path().join("streams.toml");
    std::fs::write(&streams_path, streams).unwrap();
    let args: Vec<String> = [
        "--replay",
        &format!("BTCUSD={}", btc.display()),
        "--replay",
        &format!("ALTUSD={}", alt.display()),
        "--models",
        "technical,rsi,macd,bollinger",
        "--profiles",
        profiles_path.to_str().unwrap(),
        "--accounts",
        accounts_path.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let live = live(dir.path(), &streams_path, &args).await;

    let profiles = parse_profiles(PROFILES).unwrap();
    let accounts = parse_accounts(ACCOUNTS, &["technical", "committee"]).unwrap();
    let models: Vec<String> = ["technical", "rsi", "macd", "bollinger"].iter().map(|s| s.to_string()).collect();
    let config = BacktestConfig {
        feeds: vec![feed(&btc, "BTCUSD"), feed(&alt, "ALTUSD")],
        aggregate: Vec::new(),
        inference: StageConfig::with_models(&models).unwrap(),
        analysts: Vec::new(),
        profiles,
        accounts,
        strict: false,
        from_ms: None,
        to_ms: None,
    };
    let bt = backtest(&config);
    assert_same(&live, &bt);
    // Both accounts traded both symbols.
    for account in ["trend", "votes"] {
        for symbol in ["BTCUSD", "ALTUSD"] {
            assert!(
                bt[&Table::Fill]
                    .iter()
                    .any(|r| matches!(r, Row::Fill(f) if f.account == account && f.symbol == symbol)),
                "{account} has no {symbol} fill"
            );
        }
    }
}
