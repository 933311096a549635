//! Which dataset: (source, symbol, interval), how a user names one (`SYMBOL:INTERVAL`, or
//! `SOURCE:SYMBOL:INTERVAL`) and where its file lives (`<dir>/<source>/<SYMBOL>/<interval>.parquet`).
//!
//! One directory per source and symbol rather than one flat name: symbols may hold `-`, `_`
//! and `.`, so no separator in a flat name would be unambiguous.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tradeflow_core::market::Interval;

use crate::error::DatasetError;

/// The source of datasets downloaded from Binance spot, and the default of a spec without one.
pub const BINANCE: &str = tradeflow_ingest::binance::SOURCE;

/// The source of datasets imported from CSV files unless the import names another.
pub const CSV: &str = "csv";

/// The file name extension of a dataset.
pub const EXTENSION: &str = "parquet";

/// One dataset: candles of one symbol at one interval from one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DatasetKey {
    /// `binance`, `csv`, ...: the source name candles carry in their ids.
    pub source: String,
    /// As given (Binance's are upper case: `BTCUSDT`).
    pub symbol: String,
    pub interval: Interval,
}

impl DatasetKey {
    /// Checks the names: each is 1–40 letters, digits, `-`, `_` or `.` and not `.`/`..`, so a
    /// key can never name a path outside the datasets directory.
    pub fn new(source: &str, symbol: &str, interval: Interval) -> Result<Self, DatasetError> {
        check_name("source", source)?;
        check_name("symbol", symbol)?;
        Ok(Self { source: source.to_string(), symbol: symbol.to_string(), interval })
    }

    /// A spec without its source resolved: `SYMBOL:INTERVAL` gives `(None, symbol, interval)`,
    /// `SOURCE:SYMBOL:INTERVAL` names the source. See [`Datasets::resolve`](crate::Datasets::resolve)
    /// for how a missing source is chosen.
    pub fn parse_spec(spec: &str) -> Result<(Option<String>, String, Interval), DatasetError> {
        let bad = |why: String| DatasetError::Spec { spec: spec.to_string(), why };
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let (source, symbol, interval) = match parts[..] {
            [symbol, interval] => (None, symbol, interval),
            [source, symbol, interval] => (Some(source), symbol, interval),
            _ => return Err(bad("expected SYMBOL:INTERVAL (e.g. BTCUSDT:1h) or SOURCE:SYMBOL:INTERVAL".into())),
        };
        let interval: Interval =
            interval.parse().map_err(|e: tradeflow_core::market::UnknownInterval| bad(e.to_string()))?;
        if let Some(s) = source {
            check_name("source", s).map_err(|e| bad(e.to_string()))?;
        }
        check_name("symbol", symbol).map_err(|e| bad(e.to_string()))?;
        Ok((source.map(str::to_string), symbol.to_string(), interval))
    }

    /// `<dir>/<source>/<symbol>/<interval>.parquet`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.source).join(&self.symbol).join(format!("{}.{EXTENSION}", self.interval))
    }

    /// `SYMBOL:INTERVAL` for the default source, `SOURCE:SYMBOL:INTERVAL` otherwise: the spec
    /// that names this dataset again.
    pub fn spec(&self) -> String {
        if self.source == BINANCE {
            format!("{}:{}", self.symbol, self.interval)
        } else {
            format!("{}:{}:{}", self.source, self.symbol, self.interval)
        }
    }
}

impl fmt::Display for DatasetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.source, self.symbol, self.interval)
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), DatasetError> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value != "."
        && value != ".."
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DatasetError::Name {
            field,
            value: value.to_string(),
            expected: "1 to 40 letters, digits, '-', '_' or '.'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_a_source() {
        assert_eq!(DatasetKey::parse_spec("BTCUSDT:1h").unwrap(), (None, "BTCUSDT".into(), Interval::H1));
        assert_eq!(
            DatasetKey::parse_spec("csv:BTC-USD:1d").unwrap(),
            (Some("csv".into()), "BTC-USD".into(), Interval::D1)
        );
        for (spec, why) in [
            ("BTCUSDT", "expected SYMBOL:INTERVAL"),
            ("BTCUSDT:2h:x:y", "expected SYMBOL:INTERVAL"),
            ("BTCUSDT:7m", "unknown interval \"7m\""),
            ("../etc:1h", "symbol"),
            ("a/b:BTC:1h", "source"),
        ] {
            let e = DatasetKey::parse_spec(spec).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn keys_name_their_file_and_spec() {
        let k = DatasetKey::new("binance", "BTCUSDT", Interval::M1).unwrap();
        assert_eq!(k.path_in(Path::new("data/datasets")), Path::new("data/datasets/binance/BTCUSDT/1m.parquet"));
        assert_eq!(k.spec(), "BTCUSDT:1m");
        assert_eq!(DatasetKey::new("csv", "X", Interval::H1).unwrap().spec(), "csv:X:1h");
        assert!(DatasetKey::new("..", "X", Interval::H1).is_err());
    }
}
