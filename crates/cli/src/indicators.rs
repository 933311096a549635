//! `tradeflow indicators`: the indicator set over a candle CSV, written as CSV in the layout of
//! the TA-Lib reference files: `timestamp`, then the 26 indicator columns, empty during warm-up,
//! numbers in Rust's shortest round-trip form.
//!
//! Errors name the file, the line and the column. Rows go out as they are computed: on
//! standard output the rows before a bad line have been written already; with `--out`, the
//! file appears only when every line was good.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_indicators::{COLUMNS, IndicatorRow, IndicatorSet, Next};

#[derive(Args)]
pub struct IndicatorsArgs {
    /// Candle CSV: header timestamp,open,high,low,close,volume (open time in ms), oldest first.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Write the indicators here instead of to standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &IndicatorsArgs) -> anyhow::Result<()> {
    let Some(path) = &args.out else {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let written = write_indicators(&args.csv, &mut out)
            .and_then(|_| out.flush().context("cannot write the indicators to standard output"));
        // A reader that has seen enough (`| head`) is not an error.
        return match written {
            Err(e) if is_broken_pipe(&e) => Ok(()),
            other => other,
        };
    };
    // Written beside the target and renamed once complete, so that a bad input line leaves no
    // truncated file behind (and an existing file stays as it was).
    let file_name = path.file_name().with_context(|| format!("--out {} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let written = write_file(&args.csv, &tmp)
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_file(csv: &Path, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    write_indicators(csv, &mut out)?;
    let file =
        out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Reads the candles of `csv` and writes the header and one line per candle.
fn write_indicators(csv: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    let name = csv.display();
    let file = File::open(csv).with_context(|| format!("cannot open {name}"))?;
    let mut reader = CandleReader::new(BufReader::new(file)).with_context(|| name.to_string())?.bars();
    const WRITE: &str = "cannot write the indicators";
    writeln!(out, "timestamp,{}", COLUMNS.join(",")).context(WRITE)?;
    let mut set = IndicatorSet::new();
    while let Some(candle) = reader.next() {
        let candle = candle.with_context(|| name.to_string())?;
        let row = set.next(&candle).with_context(|| format!("{name}: line {}", reader.line()))?;
        write_row(out, &row).context(WRITE)?;
    }
    Ok(())
}

fn write_row(out: &mut impl Write, row: &IndicatorRow) -> std::io::Result<()> {
    write!(out, "{}", row.timestamp)?;
    for value in row.values() {
        match value {
            Some(v) => write!(out, ",{v}")?,
            None => out.write_all(b",")?,
        }
    }
    out.write_all(b"\n")
}
