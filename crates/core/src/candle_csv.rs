//! Candles from CSV text: a header naming at least `timestamp,open,high,low,close,volume` (in
//! any order; other columns are ignored), then one candle per line.
//!
//! Plain `split(',')`: the format has no quoting. Every error names the line (1-based, the
//! header is line 1) and, where there is one, the column, so that a bad file can be fixed by hand.
//!
//! The reader yields [`RawBar`]s: numbers read, not yet judged. Ingestion turns an impossible
//! bar into an audited refusal (so it needs the raw values); [`CandleReader::bars`] validates
//! for callers that just want good bars or an error.

use std::io::BufRead;

use thiserror::Error;

use crate::market::{Bar, BarError, RawBar};

/// The columns a candle needs.
pub const CANDLE_COLUMNS: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

#[derive(Debug, Error)]
pub enum CsvError {
    #[error("line {line}: cannot read: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("line 1: the file is empty, expected the header {}", CANDLE_COLUMNS.join(","))]
    Empty,
    #[error("line 1: the header has no column `{column}` (it needs {})", CANDLE_COLUMNS.join(","))]
    MissingHeaderColumn { column: &'static str },
    #[error("line 1: the header names column `{column}` twice")]
    DuplicateHeaderColumn { column: String },
    #[error("line {line}: column `{column}` is missing (the line has {found} fields, the header {expected})")]
    MissingField { line: usize, column: String, found: usize, expected: usize },
    #[error("line {line}: {found} fields, but the header has {expected}")]
    ExtraFields { line: usize, found: usize, expected: usize },
    #[error("line {line}, column `{column}`: {value:?} is not a number")]
    NotANumber { line: usize, column: &'static str, value: String },
    #[error("line {line}, column `timestamp`: {value:?} is not an integer number of milliseconds")]
    NotATimestamp { line: usize, value: String },
    #[error("line {line}: {source}")]
    InvalidBar {
        line: usize,
        #[source]
        source: BarError,
    },
}

/// Reads bars one line at a time (constant memory, whatever the file's length).
pub struct CandleReader<R> {
    input: R,
    buf: String,
    /// Line number of the last line read.
    line: usize,
    header: Vec<String>,
    /// Index in a line of each of [`CANDLE_COLUMNS`].
    index: [usize; 6],
}

impl<R: BufRead> CandleReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, CsvError> {
        let mut buf = String::new();
        if input.read_line(&mut buf).map_err(|source| CsvError::Io { line: 1, source })? == 0 {
            return Err(CsvError::Empty);
        }
        let text = buf.trim_start_matches('\u{feff}').trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            return Err(CsvError::Empty);
        }
        let header: Vec<String> = text.split(',').map(|h| h.trim().to_string()).collect();
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(CsvError::DuplicateHeaderColumn { column: name.clone() });
            }
        }
        let mut index = [0; 6];
        for (slot, column) in index.iter_mut().zip(CANDLE_COLUMNS) {
            *slot = header.iter().position(|h| h == column).ok_or(CsvError::MissingHeaderColumn { column })?;
        }
        Ok(Self { input, buf, line: 1, header, index })
    }

    /// Line number (1-based) of the candle last returned, for messages about it.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Validating view: each row as a [`Bar`], an impossible bar being an error naming its line.
    pub fn bars(self) -> Bars<R> {
        Bars(self)
    }

    fn parse(&self, text: &str) -> Result<RawBar, CsvError> {
        let line = self.line;
        let expected = self.header.len();
        // The six wanted fields picked out in one pass, without collecting the line's fields
        // (a vector per line was a tenth of reading a file).
        let mut wanted = [""; 6];
        let mut found = 0;
        for (i, field) in text.split(',').enumerate() {
            if i < expected
                && let Some(k) = self.index.iter().position(|&at| at == i)
            {
                wanted[k] = field.trim();
            }
            found = i + 1;
        }
        if found < expected {
            let column = self.header[found].clone();
            return Err(CsvError::MissingField { line, column, found, expected });
        }
        if found > expected {
            return Err(CsvError::ExtraFields { line, found, expected });
        }
        let timestamp = wanted[0];
        let open_time =
            timestamp.parse::<i64>().map_err(|_| CsvError::NotATimestamp { line, value: timestamp.to_string() })?;
        let mut values = [0.0; 5];
        for (k, value) in values.iter_mut().enumerate() {
            let column = CANDLE_COLUMNS[k + 1];
            let raw = wanted[k + 1];
            *value = raw.parse().map_err(|_| CsvError::NotANumber { line, column, value: raw.to_string() })?;
        }
        let [open, high, low, close, volume] = values;
        Ok(RawBar { open_time, open, high, low, close, volume })
    }
}

/// See [`CandleReader::bars`].
pub struct Bars<R>(CandleReader<R>);

impl<R> Bars<R> {
    /// Line number (1-based) of the candle last returned.
    pub fn line(&self) -> usize {
        self.0.line
    }
}

impl<R: BufRead> Iterator for Bars<R> {
    type Item = Result<Bar, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.0.next()?;
        let line = self.0.line;
        Some(raw.and_then(|r| r.validate().map_err(|source| CsvError::InvalidBar { line, source })))
    }
}

impl<R: BufRead> Iterator for CandleReader<R> {
    type Item = Result<RawBar, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => {
                    self.line -= 1;
                    return None;
                }
                Ok(_) => {}
                Err(source) => return Some(Err(CsvError::Io { line: self.line, source })),
            }
            let text = self.buf.trim_end_matches(['\r', '\n']);
            // Blank lines (a trailing newline too many) carry nothing.
            if !text.trim().is_empty() {
                return Some(self.parse(text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn read(text: &str) -> Result<Vec<Bar>, CsvError> {
        CandleReader::new(text.as_bytes())?.bars().collect()
    }

    #[test]
    fn reads_candles_in_any_column_order_with_crlf_and_blank_lines() {
        let text = "\u{feff}volume,timestamp,open,high,low,close,extra\r\n1.5,1000,10,12,9,11,x\r\n\r\n0,2000,11,11,11,11,y\n\n";
        let candles = read(text).unwrap();
        assert_eq!(candles.len(), 2);
        assert_eq!((candles[0].open_time(), candles[0].close(), candles[0].volume()), (1000, 11.0, 1.5));
        assert_eq!(candles[1].open_time(), 2000);
    }

    #[test]
    fn errors_name_the_line_and_the_column() {
        let h = "timestamp,open,high,low,close,volume\n";
        let msg = |text: &str| read(text).unwrap_err().to_string();
        assert_eq!(msg(""), "line 1: the file is empty, expected the header timestamp,open,high,low,close,volume");
        assert_eq!(
            msg("timestamp,open,high,low,close\n"),
            "line 1: the header has no column `volume` (it needs timestamp,open,high,low,close,volume)"
        );
        assert_eq!(msg("timestamp,open,open,high,low,close,volume\n"), "line 1: the header names column `open` twice");
        assert_eq!(msg(&format!("{h}1,1,1,1,1,1\n2,1,1,1,abc,1\n")), "line 3, column `close`: \"abc\" is not a number");
        assert_eq!(msg(&format!("{h}1,1,1,1,,1\n")), "line 2, column `close`: \"\" is not a number");
        assert_eq!(
            msg(&format!("{h}1,1,1,1,1,1\n\n2,1,1,1,1\n")),
            "line 4: column `volume` is missing (the line has 5 fields, the header 6)"
        );
        assert_eq!(msg(&format!("{h}1,1,1,1,1,1,1\n")), "line 2: 7 fields, but the header has 6");
        assert_eq!(
            msg(&format!("{h}1.5e12,1,1,1,1,1\n")),
            "line 2, column `timestamp`: \"1.5e12\" is not an integer number of milliseconds"
        );
        assert_eq!(msg(&format!("{h}1,1,2,3,1,1\n")), "line 2: high 2 is below low 3");
        assert_eq!(msg(&format!("{h}1,1,1,1,NaN,1\n")), "line 2: close is NaN, not a finite number");
    }

    #[test]
    fn line_follows_the_candles() {
        let mut reader = CandleReader::new("timestamp,open,high,low,close,volume\n\n1,1,1,1,1,1\n".as_bytes()).unwrap();
        assert!(reader.next().unwrap().is_ok());
        assert_eq!(reader.line(), 3);
        assert!(reader.next().is_none());
    }
}
