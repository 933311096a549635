//! The TA-Lib reference files committed under `tests/data` and the comparison rule, for the
//! indicators' tests and the CLI's (which includes this file with `#[path]`, so both check by
//! the same rule).
//!
//! Plain `split(',')` parsing: the files have no quoting. Errors name the file, the line and
//! the column instead of panicking half-way through a 20,000-row file.

#![allow(dead_code)]

use std::path::PathBuf;

/// |ours − TA-Lib| ≤ TOLERANCE · max(1, |TA-Lib|).
pub const TOLERANCE: f64 = 1e-9;

/// The repository's root: both crates that include this file sit two levels below it.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A file of the repository's `tests/data` (see its README.md), or a panic that says where it
/// was looked for.
pub fn test_data(relative: &str) -> PathBuf {
    existing(PathBuf::from(ROOT).join("tests/data").join(relative))
}

/// The candles a reference file was computed from: `1h` is the bundled demo feed (byte for byte
/// the file TA-Lib was run on, so it is not kept twice), `1d` is in `tests/data/market`.
pub fn market(interval: &str) -> PathBuf {
    match interval {
        "1h" => existing(PathBuf::from(ROOT).join("demo/btcusd_1h.csv")),
        other => test_data(&format!("market/btcusd_{other}.csv")),
    }
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(path.is_file(), "test data file {} is missing from the repository", path.display());
    path
}

/// A CSV whose first column is an integer timestamp and every other cell a number or empty.
pub struct Table {
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<TableRow>,
}

pub struct TableRow {
    /// 1-based line in the file.
    pub line: usize,
    pub timestamp: i64,
    /// Every column after the timestamp; `None` for an empty cell.
    pub cells: Vec<Option<f64>>,
}

impl Table {
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let (_, header) = lines.next().ok_or_else(|| format!("{name}: empty file"))?;
        let header: Vec<String> = header.split(',').map(str::to_string).collect();
        if header.first().map(String::as_str) != Some("timestamp") {
            return Err(format!("{name}: line 1: the first column is not `timestamp`"));
        }
        let mut rows = Vec::new();
        for (line, text) in lines.filter(|(_, l)| !l.is_empty()) {
            let fields: Vec<&str> = text.split(',').collect();
            if fields.len() != header.len() {
                return Err(format!("{name}: line {line}: {} fields, the header has {}", fields.len(), header.len()));
            }
            let timestamp = fields[0]
                .parse()
                .map_err(|_| format!("{name}: line {line}, column `timestamp`: {:?} is not an integer", fields[0]))?;
            let cells = fields[1..]
                .iter()
                .zip(&header[1..])
                .map(|(cell, column)| match *cell {
                    "" => Ok(None),
                    cell => cell
                        .parse()
                        .map(Some)
                        .map_err(|_| format!("{name}: line {line}, column `{column}`: {cell:?} is not a number")),
                })
                .collect::<Result<_, _>>()?;
            rows.push(TableRow { line, timestamp, cells });
        }
        Ok(Self { name: name.to_string(), header, rows })
    }

    /// Index among `cells` of a column.
    pub fn column(&self, name: &str) -> Result<usize, String> {
        self.header[1..].iter().position(|h| h == name).ok_or_else(|| format!("{}: no column `{name}`", self.name))
    }
}

/// Largest error seen in one column, relative to max(1, |TA-Lib|).
#[derive(Default, Clone, Copy)]
pub struct ColumnStats {
    pub compared: usize,
    pub max_error: f64,
    pub max_error_row: usize,
}

/// Compares one row of ours with TA-Lib's: empty exactly where ours is `None`, else within
/// the tolerance. `columns` names the values, for the message.
pub fn compare_row(
    row: usize,
    line: usize,
    columns: &[&str],
    ours: &[Option<f64>],
    theirs: &[Option<f64>],
    stats: &mut [ColumnStats],
) -> Result<(), String> {
    for (k, column) in columns.iter().enumerate() {
        let at = || format!("row {row} (line {line}), column `{column}`");
        match (ours[k], theirs[k]) {
            (None, None) => {}
            (Some(o), None) => return Err(format!("{}: ours {o} but TA-Lib has no value (warm-up)", at())),
            (None, Some(t)) => return Err(format!("{}: ours has no value but TA-Lib has {t}", at())),
            (Some(o), Some(t)) => {
                let error = (o - t).abs() / t.abs().max(1.0);
                if error.is_nan() || error > TOLERANCE {
                    return Err(format!("{}: ours {o}, TA-Lib {t} (relative error {error:e})", at()));
                }
                let s = &mut stats[k];
                s.compared += 1;
                if error > s.max_error {
                    s.max_error = error;
                    s.max_error_row = row;
                }
            }
        }
    }
    Ok(())
}

/// One line per column: values compared and the largest relative error.
pub fn report(name: &str, columns: &[&str], stats: &[ColumnStats]) -> String {
    let mut out = format!("{name}: {} cells compared\n", stats.iter().map(|s| s.compared).sum::<usize>());
    for (column, s) in columns.iter().zip(stats) {
        out += &format!(
            "  {column:<22} {:>6} values, max error {:.2e} (row {})\n",
            s.compared, s.max_error, s.max_error_row
        );
    }
    out
}
