//! [`Datasets`]: the datasets directory, what is in it, reading, appending and deleting.
//!
//! Writers of one dataset exclude each other with an advisory lock (`flock`) on a lock file
//! beside it, which the kernel drops when its process dies, so a killed download never leaves a
//! dataset locked. Readers take no lock: a file is only ever replaced whole by a rename.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tradeflow_core::market::{Bar, Interval, RawBar};

use crate::admit::Gate;
use crate::error::DatasetError;
use crate::file;
use crate::gaps::{self, Gap};
use crate::key::{BINANCE, DatasetKey, EXTENSION};

/// A dataset as `list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    /// How to name it on the command line and in the API (`BTCUSDT:1h`, `csv:BTCUSD:1h`).
    pub spec: String,
    /// Open time of the first and last bar (epoch ms, UTC); `null` when the dataset is empty
    /// or could not be read (see `problem`).
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    pub rows: u64,
    /// Missing bars between the first and the last, `[from, to)` each.
    pub gaps: Vec<Gap>,
    /// Bars missing over all gaps.
    pub missing: u64,
    pub file_bytes: u64,
    pub path: PathBuf,
    /// Why the file could not be read, when it could not (the other figures are then 0/null).
    pub problem: Option<String>,
}

/// Bars of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Candles {
    pub key: DatasetKey,
    /// Sorted by open time, one per open time.
    pub bars: Vec<Bar>,
}

impl Candles {
    /// The bars as raw values, for a runner that feeds them to the ingestion stage.
    pub fn raw(&self) -> Vec<RawBar> {
        self.bars.iter().map(raw_of).collect()
    }
}

pub(crate) fn raw_of(b: &Bar) -> RawBar {
    RawBar {
        open_time: b.open_time(),
        open: b.open(),
        high: b.high(),
        low: b.low(),
        close: b.close(),
        volume: b.volume(),
    }
}

/// What an append (an import, a download's flush) did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppendSummary {
    pub spec: String,
    pub path: PathBuf,
    /// Rows taken.
    pub rows_added: u64,
    /// Rows that repeated a bar already there (skipped, as ingestion skips them).
    pub repeats: u64,
    /// Rows in the dataset after it.
    pub rows_total: u64,
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    /// Gaps of the whole dataset after it.
    pub gaps: Vec<Gap>,
}

/// The datasets under one directory (`<data-dir>/datasets`).
#[derive(Debug, Clone)]
pub struct Datasets {
    dir: PathBuf,
}

/// A held writer's lock on one dataset; released when dropped (or when the process dies).
pub struct WriteLock {
    _file: File,
}

impl Datasets {
    /// The datasets in `dir` (which need not exist yet: it is created by the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<data_dir>/datasets`, where `tradeflow data` keeps them.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("datasets"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &DatasetKey) -> PathBuf {
        key.path_in(&self.dir)
    }

    /// Every dataset's key, sorted. Files that are not datasets (temporary files, locks,
    /// names that are not `<source>/<symbol>/<interval>.parquet`) are passed over.
    pub fn keys(&self) -> Result<Vec<DatasetKey>, DatasetError> {
        let mut keys = Vec::new();
        for source in subdirs(&self.dir)? {
            for symbol in subdirs(&self.dir.join(&source))? {
                let dir = self.dir.join(&source).join(&symbol);
                for entry in std::fs::read_dir(&dir).map_err(DatasetError::io("cannot list", &dir))? {
                    let entry = entry.map_err(DatasetError::io("cannot list", &dir))?;
                    let name = entry.file_name();
                    let Some(interval) = name.to_str().and_then(|n| n.strip_suffix(&format!(".{EXTENSION}"))) else {
                        continue;
                    };
                    if let (Ok(interval), Ok(true)) = (interval.parse(), entry.file_type().map(|t| t.is_file()))
                        && let Ok(key) = DatasetKey::new(&source, &symbol, interval)
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Every dataset with its range, rows, gaps and size. A file that cannot be read is
    /// listed with its `problem` rather than failing the listing.
    pub fn list(&self) -> Result<Vec<DatasetInfo>, DatasetError> {
        Ok(self.keys()?.iter().map(|k| self.info(k)).collect())
    }

    /// One dataset as [`list`](Self::list) shows it.
    pub fn info(&self, key: &DatasetKey) -> DatasetInfo {
        let path = self.path(key);
        let mut info = DatasetInfo {
            source: key.source.clone(),
            symbol: key.symbol.clone(),
            interval: key.interval,
            spec: key.spec(),
            first_bar: None,
            last_bar: None,
            rows: 0,
            gaps: Vec::new(),
            missing: 0,
            file_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            path: path.clone(),
            problem: None,
        };
        match file::open_times(&path, key) {
            Ok(times) => {
                info.rows = times.len() as u64;
                info.first_bar = times.first().copied();
                info.last_bar = times.last().copied();
                info.gaps = gaps::find(&times, key.interval);
                info.missing = info.gaps.iter().map(|g| g.missing).sum();
            }
            Err(e) => info.problem = Some(e.to_string()),
        }
        info
    }

    /// The dataset a spec names: `SOURCE:SYMBOL:INTERVAL`, or `SYMBOL:INTERVAL`, which means
    /// Binance's when there is one, else the one source that has it (several: an error asking
    /// for the source). The symbol matches exactly, else without regard to case. An unknown
    /// dataset is an error listing those that exist.
    pub fn resolve(&self, spec: &str) -> Result<DatasetKey, DatasetError> {
        let (source, symbol, interval) = DatasetKey::parse_spec(spec)?;
        let keys = self.keys()?;
        let matching = |exact: bool| -> Vec<&DatasetKey> {
            keys.iter()
                .filter(|k| k.interval == interval && source.as_ref().is_none_or(|s| &k.source == s))
                .filter(|k| if exact { k.symbol == symbol } else { k.symbol.eq_ignore_ascii_case(&symbol) })
                .collect()
        };
        let mut found = matching(true);
        if found.is_empty() {
            found = matching(false);
        }
        if let Some(binance) = found.iter().find(|k| k.source == BINANCE) {
            return Ok((*binance).clone());
        }
        match found[..] {
            [one] => Ok(one.clone()),
            [] => Err(DatasetError::Unknown {
                spec: spec.trim().to_string(),
                dir: self.dir.clone(),
                available: keys.iter().map(DatasetKey::spec).collect(),
            }),
            _ => Err(DatasetError::Ambiguous {
                spec: format!("{symbol}:{interval}"),
                sources: found.iter().map(|k| k.source.clone()).collect(),
            }),
        }
    }

    /// The bars of the dataset `spec` names with open time in `[from, to)` (`None`: from the
    /// first, to the last).
    pub fn read(&self, spec: &str, from: Option<i64>, to: Option<i64>) -> Result<Candles, DatasetError> {
        let key = self.resolve(spec)?;
        self.read_key(&key, from, to)
    }

    /// [`read`](Self::read) of a resolved key.
    pub fn read_key(&self, key: &DatasetKey, from: Option<i64>, to: Option<i64>) -> Result<Candles, DatasetError> {
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(DatasetError::Range { from: f, to: t });
        }
        let bars = file::read(&self.path(key), key, from, to)?;
        Ok(Candles { key: key.clone(), bars })
    }

    /// Deletes the dataset `spec` names; returns what it was.
    pub fn delete(&self, spec: &str) -> Result<DatasetInfo, DatasetError> {
        let key = self.resolve(spec)?;
        let _lock = self.lock(&key)?;
        let info = self.info(&key);
        let path = self.path(&key);
        std::fs::remove_file(&path).map_err(DatasetError::io("cannot delete", &path))?;
        // The lock file and the directories left empty go too (best effort: another writer may
        // have started on the same symbol meanwhile).
        let _ = std::fs::remove_file(lock_path(&path));
        if let Some(symbol_dir) = path.parent() {
            let _ = std::fs::remove_dir(symbol_dir);
            if let Some(source_dir) = symbol_dir.parent() {
                let _ = std::fs::remove_dir(source_dir);
            }
        }
        Ok(info)
    }

    /// Takes the writer's lock of `key`, or fails at once if another writer holds it.
    pub fn lock(&self, key: &DatasetKey) -> Result<WriteLock, DatasetError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir).map_err(DatasetError::io("cannot create", dir))?;
        let lock = lock_path(&path);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(DatasetError::io("cannot open the lock", &lock))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if held != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
                DatasetError::Locked { path, lock }
            } else {
                DatasetError::Io { action: "cannot lock", path: lock, source: e }
            });
        }
        Ok(WriteLock { _file: file })
    }

    /// Every bar of `key`, or none when it does not exist yet.
    pub(crate) fn stored(&self, key: &DatasetKey) -> Result<Vec<Bar>, DatasetError> {
        let path = self.path(key);
        if path.exists() { file::read(&path, key, None, None) } else { Ok(Vec::new()) }
    }

    /// Writes `stored` followed by the bars `gate` took (under the caller's lock), and
    /// summarises. Refused rows fail the whole append: nothing is written.
    pub(crate) fn commit(&self, key: &DatasetKey, what: &str, gate: Gate<'_>) -> Result<AppendSummary, DatasetError> {
        if !gate.refusals.is_empty() {
            return Err(DatasetError::Refused { what: what.to_string(), refusals: gate.refusals });
        }
        let path = self.path(key);
        let added = gate.bars.len() as u64;
        let repeats = gate.repeats;
        let mut all = gate.stored().to_vec();
        all.extend(gate.bars);
        if added > 0 || !path.exists() {
            file::write(&path, key, &all)?;
        }
        Ok(self.summary(key, &all, added, repeats))
    }

    pub(crate) fn summary(&self, key: &DatasetKey, all: &[Bar], added: u64, repeats: u64) -> AppendSummary {
        let times: Vec<i64> = all.iter().map(Bar::open_time).collect();
        AppendSummary {
            spec: key.spec(),
            path: self.path(key),
            rows_added: added,
            repeats,
            rows_total: all.len() as u64,
            first_bar: times.first().copied(),
            last_bar: times.last().copied(),
            gaps: gaps::find(&times, key.interval),
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("dataset");
    path.with_file_name(format!(".{name}.lock"))
}

/// Names of the subdirectories of `dir` that could be a source or a symbol (none when `dir`
/// does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>, DatasetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DatasetError::Io { action: "cannot list", path: dir.to_path_buf(), source: e }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DatasetError::io("cannot list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}
