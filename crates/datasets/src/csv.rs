//! CSV in and out, in the candle CSV format the rest of tradeflow reads
//! (`tradeflow_core::candle_csv`: a header naming `timestamp,open,high,low,close,volume`,
//! timestamps in epoch milliseconds), so an exported file can be replayed, backtested or
//! imported again as it is.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tradeflow_core::candle_csv::{CandleReader, CsvError};
use tradeflow_core::market::Interval;

use crate::admit::Gate;
use crate::error::DatasetError;
use crate::key::DatasetKey;
use crate::store::{AppendSummary, Datasets};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    pub spec: String,
    pub path: PathBuf,
    pub rows: u64,
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
}

impl Datasets {
    /// Imports the candle CSV `csv` into the dataset (`source`, `symbol`, `interval`), after
    /// its last bar (created when new). Every row goes through the ingestion stage's checks;
    /// rows repeating bars already there are skipped. Any refused row (unreadable, not a valid
    /// bar, out of order, conflicting) fails the import with every refusal, naming the line
    /// and the column: nothing is written.
    pub fn import_csv(
        &self,
        csv: &Path,
        source: &str,
        symbol: &str,
        interval: Interval,
    ) -> Result<AppendSummary, DatasetError> {
        let key = DatasetKey::new(source, symbol, interval)?;
        let csv_error = |source| DatasetError::Csv { path: csv.to_path_buf(), source };
        let input = std::fs::File::open(csv).map_err(DatasetError::io("cannot open", csv))?;
        let mut reader = CandleReader::new(std::io::BufReader::new(input)).map_err(csv_error)?;
        let _lock = self.lock(&key)?;
        let stored = self.stored(&key)?;
        let mut gate = Gate::new(&key, &stored);
        let name = csv.display().to_string();
        while let Some(row) = reader.next() {
            let line = reader.line();
            match row {
                Ok(raw) => gate.row(raw, || format!("{name} line {line}")),
                // The file itself cannot be read any further: not a row's fault.
                Err(e @ CsvError::Io { .. }) => return Err(csv_error(e)),
                // The error names the line and the column.
                Err(e) => gate.malformed(name.clone(), None, e.to_string()),
            }
        }
        self.commit(&key, &format!("import of {name} into {key}"), gate)
    }

    /// Writes the bars of `spec` in `[from, to)` to `csv` (replaced atomically).
    pub fn export_csv(
        &self,
        spec: &str,
        csv: &Path,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<ExportSummary, DatasetError> {
        let candles = self.read(spec, from, to)?;
        let dir = csv.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = csv.file_name().and_then(|n| n.to_str()).unwrap_or("export.csv");
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            writeln!(out, "timestamp,open,high,low,close,volume")?;
            for b in &candles.bars {
                // `{}` prints the shortest text that reads back as the same f64.
                writeln!(out, "{},{},{},{},{},{}", b.open_time(), b.open(), b.high(), b.low(), b.close(), b.volume())?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(DatasetError::Io { action: "cannot write", path: csv.to_path_buf(), source: e });
        }
        std::fs::rename(&tmp, csv).map_err(DatasetError::io("cannot write", csv))?;
        Ok(ExportSummary {
            spec: candles.key.spec(),
            path: csv.to_path_buf(),
            rows: candles.bars.len() as u64,
            first_bar: candles.bars.first().map(|b| b.open_time()),
            last_bar: candles.bars.last().map(|b| b.open_time()),
        })
    }
}
