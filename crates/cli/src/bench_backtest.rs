//! `tradeflow bench backtest`: how fast a backtest runs the live stages, on a seeded random walk
//! of one-minute bars written to a CSV file:
//! - the full stage chain (5 rule models voting, 2 profiles, 2 accounts) on one thread;
//! - `sma_cross` through the same chain (one rule model, one profile, one account);
//! - the whole `tradeflow backtest --strategy sma_cross` process (CSV reading included) beside
//!   backtesting.py 0.6.6's `Backtest.run()` alone on the same file (scripts/peer/), when
//!   python3 can import it; otherwise the peer's figures are `null` with the reason.
//!
//! The engine phases time `Engine::run` over a timeline already read, best of `--repeat`.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tradeflow_backtest::{BacktestConfig, Engine, Tape};
use tradeflow_core::market::Interval;
use tradeflow_ingest::synthetic::RandomWalk;
use tradeflow_ingest::timeline::Timeline;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peer/backtesting_py_sma.py");

#[derive(Args, Debug)]
pub struct BacktestBenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// One-minute bars of the random walk.
    #[arg(long, default_value_t = 200_000)]
    candles: usize,
    /// Runs of each engine phase; the best counts.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Seed of the random walk.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Leave out the process-against-backtesting.py phase.
    #[arg(long)]
    no_peer: bool,
}

const FULL_PROFILES: &str = "[[profile]]\nname = \"committee\"\n\
models = { rsi = 1.0, macd = 1.0, bollinger = 1.0, volume = 0.5, stochastic = 1.0 }\nmethod = \"weighted_vote\"\n\n\
[[profile]]\nname = \"mean\"\nmodels = { rsi = 1.0, macd = 1.0, bollinger = 1.0, volume = 1.0, stochastic = 1.0 }\n\
method = \"confidence_weighted_mean\"\n";
const FULL_ACCOUNTS: &str = "[[account]]\nid = \"a\"\nprofile = \"committee\"\nstarting_balance = 10000\n\n\
[[account]]\nid = \"b\"\nprofile = \"mean\"\nstarting_balance = 10000\nleverage = 3\n";

pub fn run(args: &BacktestBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let csv = dir.path().join("walk_1m.csv");
    write_walk(&csv, args.candles, args.seed)?;
    // Both configurations go through `tradeflow backtest`'s own flags and files.
    let (profiles, accounts) = (dir.path().join("profiles.toml"), dir.path().join("accounts.toml"));
    std::fs::write(&profiles, FULL_PROFILES).context("cannot write the profiles")?;
    std::fs::write(&accounts, FULL_ACCOUNTS).context("cannot write the accounts")?;
    let walk = format!("WALK={}", csv.display());
    let full = backtest_config(&[
        "--replay",
        &walk,
        "--interval",
        "1m",
        "--models",
        "rsi,macd,bollinger,volume,stochastic",
        "--profiles",
        &profiles.display().to_string(),
        "--accounts",
        &accounts.display().to_string(),
    ])?;
    let timeline = Timeline::load(&full.feeds)?;
    let full_rate = engine_rate(&full, &timeline, args.repeat)?;
    let sma =
        backtest_config(&["--replay", &walk, "--interval", "1m", "--strategy", "sma_cross", "--commission", "0.001"])?;
    let sma_rate = engine_rate(&sma, &timeline, args.repeat)?;

    let (process, peer) = if args.no_peer {
        (Value::Null, json!({"error": "left out (--no-peer)"}))
    } else {
        (process_phase(&csv)?, peer_phase(&csv))
    };
    let speedup = match (process["seconds"].as_f64(), peer["run_s"].as_f64()) {
        (Some(ours), Some(theirs)) if ours > 0.0 => json!(theirs / ours),
        _ => Value::Null,
    };
    let report = json!({
        "candles": args.candles,
        "candles_per_s": full_rate,
        "sma_cross_candles_per_s": sma_rate,
        "process": process,
        "backtesting_py": peer,
        "process_speedup_over_backtesting_py_run": speedup,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    if args.json {
        println!("{report}");
    } else {
        println!("bench backtest: {} one-minute bars of a seeded random walk (seed {})", args.candles, args.seed);
        println!("  full chain (5 rule models, 2 profiles, 2 accounts), one thread: {full_rate:>12.0} candles/s");
        println!("  sma_cross (1 model, 1 profile, 1 account), one thread:          {sma_rate:>12.0} candles/s");
        println!("  tradeflow backtest process (CSV included): {}", process["seconds"]);
        println!("  backtesting.py Backtest.run():             {}", peer.get("run_s").unwrap_or(&peer["error"]));
        println!("  speed-up (theirs / ours): {speedup}");
    }
    Ok(())
}

/// The configuration `tradeflow backtest <flags>` would run.
fn backtest_config(flags: &[&str]) -> anyhow::Result<BacktestConfig> {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        args: crate::backtest::BacktestArgs,
    }
    let parsed = <Flags as clap::Parser>::try_parse_from(std::iter::once("backtest").chain(flags.iter().copied()))
        .context("the benchmark's backtest flags")?;
    Ok(parsed.args.base()?.0)
}

/// Best candles/s of `repeat` runs of the engine over `timeline` (the results sink included).
fn engine_rate(config: &BacktestConfig, timeline: &Timeline, repeat: u32) -> anyhow::Result<f64> {
    let mut best = 0.0f64;
    for _ in 0..repeat.max(1) {
        let mut engine = Engine::new(config)?;
        let mut tape = Tape::new(&config.accounts);
        let started = Instant::now();
        engine.run(timeline, &config.feeds, &mut tape)?;
        let rate = tape.candles as f64 / started.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    Ok(best)
}

/// The whole `tradeflow backtest --strategy sma_cross --json` process on `csv`.
fn process_phase(csv: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let started = Instant::now();
    let out = std::process::Command::new(exe)
        .args(["backtest", "--strategy", "sma_cross", "--commission", "0.001", "--interval", "1m", "--json", "--csv"])
        .arg(csv)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run tradeflow backtest")?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("tradeflow backtest failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("tradeflow backtest printed no JSON")?;
    let account = &report["accounts"][0];
    Ok(json!({
        "seconds": seconds,
        "trades": account["trades"].as_array().map(Vec::len),
        "return_pct": account["stats"]["Return [%]"],
    }))
}

/// backtesting.py on the same file, or `{"error": why}`.
fn peer_phase(csv: &Path) -> Value {
    let out = std::process::Command::new("python3")
        .arg(PEER)
        .arg(csv)
        .args(["--commission", "0.001"])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({"error": format!("unreadable answer from {PEER}: {e}")})),
        Ok(o) => json!({"error": format!("{PEER} failed: {}", String::from_utf8_lossy(&o.stderr).trim())}),
        Err(e) => json!({"error": format!("cannot run python3: {e}")}),
    }
}

/// `n` one-minute bars of a seeded random walk as a candle CSV.
fn write_walk(path: &Path, n: usize, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut walk = RandomWalk::new(seed, 30_000.0, 1_600_000_000_000, Interval::M1.millis(), 0.001);
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "timestamp,open,high,low,close,volume")?;
    for _ in 0..n {
        let b = walk.next_bar();
        writeln!(w, "{},{},{},{},{},{}", b.open_time, b.open, b.high, b.low, b.close, b.volume)?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))
}
