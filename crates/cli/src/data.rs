//! `tradeflow data`: the datasets under `<data-dir>/datasets` (crates/datasets): download
//! Binance spot klines (resumable), import and export CSV, list, delete. Offline but for the
//! download: no Redis.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use tradeflow_core::market::Interval;
use tradeflow_core::time::{iso_utc, parse_day_or_ms};
use tradeflow_datasets::{BinanceConfig, DatasetInfo, Datasets, DownloadRequest, Gap, download};

use crate::progress::Display;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Download Binance spot klines into a dataset; run again to continue where its file ends.
    Download(DownloadArgs),
    /// Import a candle CSV (timestamp,open,high,low,close,volume) into a dataset, after its last bar.
    Import(ImportArgs),
    /// The datasets: symbol, interval, first and last bar, rows, gaps.
    List(ListArgs),
    /// Delete a dataset.
    Delete(SpecArgs),
    /// Write a dataset's candles to a CSV file (the format `data import` and `--replay` read).
    Export(ExportArgs),
}

#[derive(Args)]
pub struct DataDir {
    /// The data directory; datasets live in <DATA_DIR>/datasets.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

impl DataDir {
    fn datasets(&self) -> Datasets {
        Datasets::in_data_dir(&self.data_dir)
    }
}

#[derive(Args)]
pub struct DownloadArgs {
    /// What to download: SYMBOL:INTERVAL, e.g. BTCUSDT:1h.
    #[arg(long, value_name = "SYMBOL:INTERVAL")]
    binance: String,
    /// First bar: YYYY-MM-DD (UTC) or epoch milliseconds.
    #[arg(long, value_name = "DATE")]
    from: String,
    /// End (exclusive): YYYY-MM-DD (UTC) or epoch milliseconds; default now.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Binance REST base URL (testnets, proxies).
    #[arg(long, default_value = "https://api.binance.com")]
    binance_rest_url: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The candle CSV file.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Symbol of its candles.
    #[arg(long)]
    symbol: String,
    /// Interval of its candles.
    #[arg(long)]
    interval: Interval,
    /// Source name of the dataset (and of its candles' ids).
    #[arg(long, default_value = tradeflow_datasets::CSV)]
    source: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON (every gap of every dataset).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Args)]
pub struct SpecArgs {
    /// SYMBOL:INTERVAL (Binance's, else the one source that has it) or SOURCE:SYMBOL:INTERVAL.
    #[arg(value_name = "SYMBOL:INTERVAL")]
    spec: String,
    #[command(flatten)]
    dir: DataDir,
}

#[derive(Args)]
pub struct ExportArgs {
    /// SYMBOL:INTERVAL (Binance's, else the one source that has it) or SOURCE:SYMBOL:INTERVAL.
    #[arg(value_name = "SYMBOL:INTERVAL")]
    spec: String,
    /// The CSV file to write (replaced).
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// First bar: YYYY-MM-DD (UTC) or epoch milliseconds.
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// End (exclusive): YYYY-MM-DD (UTC) or epoch milliseconds.
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    #[command(flatten)]
    dir: DataDir,
}

pub async fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Download(args) => run_download(args).await,
        DataCommand::Import(args) => {
            let datasets = args.dir.datasets();
            let summary = datasets.import_csv(&args.csv, &args.source, &args.symbol, args.interval)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "data import: {}: {} rows added, {} repeated rows skipped; {} rows from {} to {}; {} → {}",
                    summary.spec,
                    summary.rows_added,
                    summary.repeats,
                    summary.rows_total,
                    when(summary.first_bar),
                    when(summary.last_bar),
                    args.csv.display(),
                    summary.path.display()
                );
                print_gaps(&summary.gaps, usize::MAX);
            }
            Ok(())
        }
        DataCommand::List(args) => {
            let list = args.dir.datasets().list()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list, &args.dir);
            }
            Ok(())
        }
        DataCommand::Delete(args) => {
            let info = args.dir.datasets().delete(&args.spec)?;
            println!("data delete: deleted {} ({} rows, {})", info.spec, info.rows, info.path.display());
            Ok(())
        }
        DataCommand::Export(args) => {
            let from = args.from.as_deref().map(|d| date("--from", d)).transpose()?;
            let to = args.to.as_deref().map(|d| date("--to", d)).transpose()?;
            let s = args.dir.datasets().export_csv(&args.spec, &args.csv, from, to)?;
            println!(
                "data export: {}: {} rows from {} to {} → {}",
                s.spec,
                s.rows,
                when(s.first_bar),
                when(s.last_bar),
                s.path.display()
            );
            Ok(())
        }
    }
}

async fn run_download(args: DownloadArgs) -> anyhow::Result<()> {
    let (symbol, interval) = args
        .binance
        .split_once(':')
        .with_context(|| format!("--binance {}: expected SYMBOL:INTERVAL, e.g. BTCUSDT:1h", args.binance))?;
    let interval: Interval = interval.parse().with_context(|| format!("--binance {}", args.binance))?;
    let request = DownloadRequest {
        symbol: symbol.to_string(),
        interval,
        from: date("--from", &args.from)?,
        to: args.to.as_deref().map(|d| date("--to", d)).transpose()?,
    };
    let mut config = BinanceConfig::new([]);
    config.rest_url = args.binance_rest_url.clone();
    let cancel = CancellationToken::new();
    crate::worker::spawn_signal_handler(cancel.clone())?;
    // Progress in bars of the range: the bar (or the plain lines off a terminal) counts them.
    let end = request.to.unwrap_or_else(tradeflow_core::time::now_ms);
    let total = u64::try_from((end - request.from).max(0) / interval.millis()).unwrap_or(0).max(1);
    let display = Display::new("data download", "bars", total);
    let summary = download(
        &args.dir.datasets(),
        &config,
        &request,
        |p| {
            let done = (p.fraction * total as f64).round() as u64;
            display.update("bars", done, total, &format!("{} rows", p.rows));
        },
        &cancel,
    )
    .await;
    display.finish();
    let summary = summary?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let resumed = summary.resumed_at.map_or(String::new(), |t| format!(" (resumed at {} UTC)", iso_utc(t)));
        let rate = summary.rows_per_second.map_or("no rows to time".to_string(), |r| format!("{r:.0} rows/s"));
        println!(
            "data download: {}: {} rows added{resumed}, {} pages, {} refused, {} gap(s), {:.2} s, {rate}; {} rows from {} to {} in {}",
            summary.spec,
            summary.rows_added,
            summary.pages,
            summary.refused.len(),
            summary.gaps.len(),
            summary.seconds,
            summary.rows_total,
            when(summary.first_bar),
            when(summary.last_bar),
            summary.path.display()
        );
        for r in &summary.refused {
            println!("  refused ({}): {}: {}", r.kind, r.at, r.reason);
        }
        print_gaps(&summary.gaps, usize::MAX);
    }
    if summary.cancelled {
        bail!(
            "interrupted: {} rows were saved; run the same command again to continue from {}",
            summary.rows_added,
            when(summary.last_bar)
        );
    }
    Ok(())
}

fn date(flag: &str, text: &str) -> anyhow::Result<i64> {
    parse_day_or_ms(text).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_string(), iso_utc)
}

fn print_gaps(gaps: &[Gap], at_most: usize) {
    for g in gaps.iter().take(at_most) {
        println!("  gap: {} to {} UTC, {} bar(s) missing", iso_utc(g.from), iso_utc(g.to), g.missing);
    }
    if gaps.len() > at_most {
        println!("  ... {} more gap(s) (--json lists them all)", gaps.len() - at_most);
    }
}

fn print_list(list: &[DatasetInfo], dir: &DataDir) {
    if list.is_empty() {
        println!("no datasets in {}", dir.datasets().dir().display());
        return;
    }
    println!(
        "{:<10} {:<14} {:<8} {:>10} {:<19} {:<19} {:>5} {:>8} {:>10}",
        "SOURCE", "SYMBOL", "INTERVAL", "ROWS", "FIRST BAR (UTC)", "LAST BAR (UTC)", "GAPS", "MISSING", "BYTES"
    );
    for d in list {
        println!(
            "{:<10} {:<14} {:<8} {:>10} {:<19} {:<19} {:>5} {:>8} {:>10}",
            d.source,
            d.symbol,
            d.interval.as_str(),
            d.rows,
            when(d.first_bar),
            when(d.last_bar),
            d.gaps.len(),
            d.missing,
            d.file_bytes
        );
        if let Some(p) = &d.problem {
            println!("  unreadable: {p}");
        }
        print_gaps(&d.gaps, 5);
    }
}
