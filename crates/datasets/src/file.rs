//! The Parquet file of one dataset, read and written with the parquet crate's column
//! reader and writer (no Arrow: six numeric columns and three constant strings need none).
//!
//! Columns, in this order, every one `REQUIRED`:
//!
//! | column | Parquet type | pandas / polars |
//! |---|---|---|
//! | `open_time` | INT64, TIMESTAMP(MILLIS, UTC) | `datetime64[ms, UTC]` / `Datetime(ms, UTC)` |
//! | `open`, `high`, `low`, `close`, `volume` | DOUBLE | `float64` |
//! | `symbol`, `interval`, `source` | BYTE_ARRAY, STRING (dictionary-encoded) | `str` |
//!
//! `volume` is in the base asset, as in a [`Candle`](tradeflow_core::market::Candle). The
//! three strings repeat the file's key on every row so that files concatenated by a user
//! (`pd.concat`, `pl.scan_parquet("datasets/**/*.parquet")`) still say what each row is;
//! dictionary encoding makes them cost a few bytes per row group. The key-value metadata
//! holds `tradeflow.format` (this layout's version), `tradeflow.source`, `tradeflow.symbol`
//! and `tradeflow.interval`.
//!
//! Rows are sorted by open time, one per bar, in row groups of [`ROW_GROUP_ROWS`] counted
//! from the first row: the layout depends on the rows alone (no write time in the file), so
//! the same rows always give the same bytes, however many runs it took to fetch them.
//! A file is only ever replaced whole, through a temporary file and a rename, so a reader
//! (or a process killed half-way through a write) never sees half of one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, Encoding, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use tradeflow_core::market::{Bar, RawBar};

use crate::error::DatasetError;
use crate::key::DatasetKey;

/// Version of the layout above, in `tradeflow.format`.
pub const FORMAT_VERSION: &str = "1";

/// Rows per row group (the last one holds the rest): large enough for fast scans, small
/// enough that a read of a short range skips most of a long file.
pub const ROW_GROUP_ROWS: usize = 1 << 17;

const SCHEMA: &str = "
message candles {
  REQUIRED INT64 open_time (TIMESTAMP(MILLIS,true));
  REQUIRED DOUBLE open;
  REQUIRED DOUBLE high;
  REQUIRED DOUBLE low;
  REQUIRED DOUBLE close;
  REQUIRED DOUBLE volume;
  REQUIRED BYTE_ARRAY symbol (STRING);
  REQUIRED BYTE_ARRAY interval (STRING);
  REQUIRED BYTE_ARRAY source (STRING);
}";

/// Column names and physical types, in file order.
const COLUMNS: [(&str, PhysicalType); 9] = [
    ("open_time", PhysicalType::INT64),
    ("open", PhysicalType::DOUBLE),
    ("high", PhysicalType::DOUBLE),
    ("low", PhysicalType::DOUBLE),
    ("close", PhysicalType::DOUBLE),
    ("volume", PhysicalType::DOUBLE),
    ("symbol", PhysicalType::BYTE_ARRAY),
    ("interval", PhysicalType::BYTE_ARRAY),
    ("source", PhysicalType::BYTE_ARRAY),
];

/// What a file's footer says, without reading its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Footer {
    pub rows: u64,
    /// Open time of the first and last row (from the row groups' statistics).
    pub first: Option<i64>,
    pub last: Option<i64>,
}

fn properties(key: &DatasetKey) -> WriterProperties {
    let kv = |k: &str, v: &str| KeyValue::new(format!("tradeflow.{k}"), v.to_string());
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Prices rarely repeat exactly: a dictionary would be built and thrown away per page.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("symbol"), true)
        .set_column_dictionary_enabled(ColumnPath::from("interval"), true)
        .set_column_dictionary_enabled(ColumnPath::from("source"), true)
        // Open times step by one interval: delta encoding stores them in a few bits each.
        .set_column_encoding(ColumnPath::from("open_time"), Encoding::DELTA_BINARY_PACKED)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(vec![
            kv("format", FORMAT_VERSION),
            kv("source", &key.source),
            kv("symbol", &key.symbol),
            kv("interval", key.interval.as_str()),
        ]))
        .build()
}

/// Replaces the file of `key` at `path` with `bars` (sorted, one per open time): written to a
/// temporary file beside it, flushed to disk, then renamed over it. Returns the file's size.
pub fn write(path: &Path, key: &DatasetKey, bars: &[Bar]) -> Result<u64, DatasetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(DatasetError::io("cannot create", dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("dataset");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = write_to(&tmp, key, bars);
    match written {
        Ok(size) => {
            std::fs::rename(&tmp, path).map_err(DatasetError::io("cannot rename a new file over", path))?;
            // The rename itself reaches the disk with the directory.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(size)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_to(tmp: &PathBuf, key: &DatasetKey, bars: &[Bar]) -> Result<u64, DatasetError> {
    let pq = DatasetError::parquet(tmp.clone());
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(DatasetError::parquet(tmp.clone()))?);
    let file = File::create(tmp).map_err(DatasetError::io("cannot create", tmp.clone()))?;
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(properties(key))).map_err(pq)?;
    let strings = [key.symbol.as_str(), key.interval.as_str(), key.source.as_str()].map(ByteArray::from);
    for chunk in bars.chunks(ROW_GROUP_ROWS) {
        let pq = DatasetError::parquet(tmp.clone());
        write_group(&mut writer, chunk, &strings).map_err(pq)?;
    }
    let mut file = writer.into_inner().map_err(DatasetError::parquet(tmp.clone()))?;
    file.flush().map_err(DatasetError::io("cannot write", tmp.clone()))?;
    file.sync_all().map_err(DatasetError::io("cannot write", tmp.clone()))?;
    let size = file.metadata().map_err(DatasetError::io("cannot stat", tmp.clone()))?.len();
    Ok(size)
}

fn write_group(
    writer: &mut SerializedFileWriter<File>,
    bars: &[Bar],
    strings: &[ByteArray; 3],
) -> parquet::errors::Result<()> {
    let mut group = writer.next_row_group()?;
    let times: Vec<i64> = bars.iter().map(Bar::open_time).collect();
    let doubles: [Vec<f64>; 5] = [Bar::open, Bar::high, Bar::low, Bar::close, Bar::volume]
        .map(|field| bars.iter().map(field).collect::<Vec<f64>>());
    let mut column = 0;
    while let Some(mut col) = group.next_column()? {
        match column {
            0 => {
                col.typed::<Int64Type>().write_batch(&times, None, None)?;
            }
            1..=5 => {
                col.typed::<DoubleType>().write_batch(&doubles[column - 1], None, None)?;
            }
            _ => {
                let value = &strings[column - 6];
                let values = vec![value.clone(); bars.len()];
                col.typed::<ByteArrayType>().write_batch(&values, None, None)?;
            }
        }
        col.close()?;
        column += 1;
    }
    group.close()?;
    Ok(())
}

/// Opens a dataset file and checks that it is one: the columns above and, when `key` is
/// given, the key in its metadata.
fn open(path: &Path, key: Option<&DatasetKey>) -> Result<SerializedFileReader<File>, DatasetError> {
    let file = File::open(path).map_err(DatasetError::io("cannot open", path))?;
    let reader = SerializedFileReader::new(file).map_err(DatasetError::parquet(path))?;
    let format = |why: String| DatasetError::Format { path: path.to_path_buf(), why };
    let meta = reader.metadata().file_metadata();
    let columns = meta.schema_descr().columns();
    if columns.len() != COLUMNS.len() {
        return Err(format(format!("{} columns, expected {}", columns.len(), COLUMNS.len())));
    }
    for (i, (c, (name, physical))) in columns.iter().zip(COLUMNS).enumerate() {
        if c.name() != name || c.physical_type() != physical || c.max_def_level() != 0 || c.max_rep_level() != 0 {
            return Err(format(format!(
                "column {i} is `{}` ({}), expected required `{name}` ({physical})",
                c.name(),
                c.physical_type()
            )));
        }
    }
    let millis_utc = columns[0].logical_type_ref() == Some(&LogicalType::timestamp(true, TimeUnit::MILLIS));
    if !millis_utc {
        return Err(format("column `open_time` is not a UTC millisecond timestamp".into()));
    }
    if let Some(key) = key {
        let kv = meta.key_value_metadata();
        let get = |k: &str| {
            kv.and_then(|kv| kv.iter().find(|e| e.key == format!("tradeflow.{k}"))).and_then(|e| e.value.clone())
        };
        for (k, want) in [("source", key.source.as_str()), ("symbol", &key.symbol), ("interval", key.interval.as_str())]
        {
            let got = get(k);
            if got.as_deref() != Some(want) {
                return Err(format(format!("metadata tradeflow.{k} is {got:?}, expected {want:?} (from its path)")));
            }
        }
    }
    Ok(reader)
}

/// Rows and first and last open time, from the footer alone.
pub fn footer(path: &Path, key: &DatasetKey) -> Result<Footer, DatasetError> {
    let reader = open(path, Some(key))?;
    let meta = reader.metadata();
    let rows = u64::try_from(meta.file_metadata().num_rows()).unwrap_or(0);
    let (mut first, mut last) = (None::<i64>, None::<i64>);
    for rg in meta.row_groups() {
        if let Some((min, max)) = time_stats(rg.column(0).statistics()) {
            first = Some(first.map_or(min, |f| f.min(min)));
            last = Some(last.map_or(max, |l| l.max(max)));
        }
    }
    if rows > 0 && (first.is_none() || last.is_none()) {
        // Written by someone else without statistics: read the times.
        let times = open_times(path, key)?;
        return Ok(Footer { rows, first: times.first().copied(), last: times.last().copied() });
    }
    Ok(Footer { rows, first, last })
}

fn time_stats(stats: Option<&Statistics>) -> Option<(i64, i64)> {
    match stats {
        Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// The open times of every row, in file order (for gaps, without reading prices).
pub fn open_times(path: &Path, key: &DatasetKey) -> Result<Vec<i64>, DatasetError> {
    let reader = open(path, Some(key))?;
    let mut times = Vec::with_capacity(usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0));
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(DatasetError::parquet(path))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        times.extend(read_i64(path, group.as_ref(), 0, rows)?);
    }
    Ok(times)
}

/// The bars with open time in `[from, to)` (all of them for `None`), each checked as a bar,
/// in strictly increasing open time. A row that breaks this is an error
/// naming it: the file was not written by tradeflow, or was changed since.
pub fn read(path: &Path, key: &DatasetKey, from: Option<i64>, to: Option<i64>) -> Result<Vec<Bar>, DatasetError> {
    let reader = open(path, Some(key))?;
    let (lo, hi) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let mut bars = Vec::new();
    let mut row_base = 0usize;
    let mut last: Option<i64> = None;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(DatasetError::parquet(path))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let base = row_base;
        row_base += rows;
        // Whole row groups outside the range are skipped on their statistics.
        if let Some((min, max)) = time_stats(group.metadata().column(0).statistics())
            && (max < lo || min >= hi)
        {
            last = Some(max);
            continue;
        }
        let times = read_i64(path, group.as_ref(), 0, rows)?;
        let mut values: Vec<Vec<f64>> = Vec::with_capacity(5);
        for c in 1..=5 {
            values.push(read_f64(path, group.as_ref(), c, rows)?);
        }
        for (i, &t) in times.iter().enumerate() {
            let row = base + i + 1;
            let bad = |why: String| DatasetError::Format { path: path.to_path_buf(), why: format!("row {row}: {why}") };
            if let Some(prev) = last
                && t <= prev
            {
                return Err(bad(format!("open time {t} is not after the row before's {prev}")));
            }
            last = Some(t);
            if t < lo || t >= hi {
                continue;
            }
            let raw = RawBar {
                open_time: t,
                open: values[0][i],
                high: values[1][i],
                low: values[2][i],
                close: values[3][i],
                volume: values[4][i],
            };
            bars.push(raw.validate().map_err(|e| bad(e.to_string()))?);
        }
    }
    Ok(bars)
}

fn short(path: &Path, column: usize, got: usize, rows: usize) -> DatasetError {
    DatasetError::Format {
        path: path.to_path_buf(),
        why: format!("column `{}` has {got} values in a row group of {rows} rows", COLUMNS[column].0),
    }
}

fn read_i64(path: &Path, group: &dyn RowGroupReader, column: usize, rows: usize) -> Result<Vec<i64>, DatasetError> {
    let reader = group.get_column_reader(column).map_err(DatasetError::parquet(path))?;
    let ColumnReader::Int64ColumnReader(mut r) = reader else {
        return Err(short(path, column, 0, rows));
    };
    let mut values = Vec::with_capacity(rows);
    while values.len() < rows {
        let (records, _, _) =
            r.read_records(rows - values.len(), None, None, &mut values).map_err(DatasetError::parquet(path))?;
        if records == 0 {
            break;
        }
    }
    if values.len() != rows {
        return Err(short(path, column, values.len(), rows));
    }
    Ok(values)
}

fn read_f64(path: &Path, group: &dyn RowGroupReader, column: usize, rows: usize) -> Result<Vec<f64>, DatasetError> {
    let reader = group.get_column_reader(column).map_err(DatasetError::parquet(path))?;
    let ColumnReader::DoubleColumnReader(mut r) = reader else {
        return Err(short(path, column, 0, rows));
    };
    let mut values = Vec::with_capacity(rows);
    while values.len() < rows {
        let (records, _, _) =
            r.read_records(rows - values.len(), None, None, &mut values).map_err(DatasetError::parquet(path))?;
        if records == 0 {
            break;
        }
    }
    if values.len() != rows {
        return Err(short(path, column, values.len(), rows));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::market::Interval;

    fn bars(n: i64) -> Vec<Bar> {
        (0..n).map(|k| Bar::new(k * 60_000, 10.0, 11.0 + k as f64, 9.0, 10.5, 0.25 * k as f64).unwrap()).collect()
    }

    #[test]
    fn rows_round_trip_and_ranges_skip_what_is_outside() {
        let dir = tempfile::tempdir().unwrap();
        let key = DatasetKey::new("binance", "BTCUSDT", Interval::M1).unwrap();
        let path = key.path_in(dir.path());
        let all = bars(ROW_GROUP_ROWS as i64 + 10);
        write(&path, &key, &all).unwrap();
        assert_eq!(read(&path, &key, None, None).unwrap(), all);
        let some = read(&path, &key, Some(5 * 60_000), Some(8 * 60_000)).unwrap();
        assert_eq!(some, all[5..8]);
        let tail = read(&path, &key, Some(ROW_GROUP_ROWS as i64 * 60_000), None).unwrap();
        assert_eq!(tail.len(), 10);
        assert_eq!(
            footer(&path, &key).unwrap(),
            Footer { rows: all.len() as u64, first: Some(0), last: Some((all.len() as i64 - 1) * 60_000) }
        );
        assert_eq!(open_times(&path, &key).unwrap().len(), all.len());
        // Nothing is left beside it.
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("1m.parquet")]);
    }

    #[test]
    fn same_rows_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let key = DatasetKey::new("binance", "ETHUSDT", Interval::M1).unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write(&a, &key, &bars(1000)).unwrap();
        write(&b, &key, &bars(1000)).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn a_file_of_another_key_or_shape_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let key = DatasetKey::new("binance", "BTCUSDT", Interval::M1).unwrap();
        let path = key.path_in(dir.path());
        write(&path, &key, &bars(3)).unwrap();
        let other = DatasetKey::new("binance", "ETHUSDT", Interval::M1).unwrap();
        let e = read(&path, &other, None, None).unwrap_err().to_string();
        assert!(e.contains("metadata tradeflow.symbol is Some(\"BTCUSDT\"), expected \"ETHUSDT\""), "{e}");
        std::fs::write(&path, b"not parquet").unwrap();
        assert!(read(&path, &key, None, None).is_err());
    }
}
