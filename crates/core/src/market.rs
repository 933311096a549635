//! Market data: bar intervals, validated OHLCV bars, and the `Candle` message of `md.candles`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::payload::Payload;

/// A bar interval, as Binance spells them (`1m` … `1w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Interval {
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D3,
    W1,
}

const INTERVALS: [(Interval, &str, i64); 14] = [
    (Interval::M1, "1m", 60_000),
    (Interval::M3, "3m", 180_000),
    (Interval::M5, "5m", 300_000),
    (Interval::M15, "15m", 900_000),
    (Interval::M30, "30m", 1_800_000),
    (Interval::H1, "1h", 3_600_000),
    (Interval::H2, "2h", 7_200_000),
    (Interval::H4, "4h", 14_400_000),
    (Interval::H6, "6h", 21_600_000),
    (Interval::H8, "8h", 28_800_000),
    (Interval::H12, "12h", 43_200_000),
    (Interval::D1, "1d", 86_400_000),
    (Interval::D3, "3d", 259_200_000),
    (Interval::W1, "1w", 604_800_000),
];

impl Interval {
    pub fn as_str(self) -> &'static str {
        INTERVALS.iter().find(|(i, _, _)| *i == self).map_or("?", |(_, s, _)| s)
    }

    /// Length in milliseconds.
    pub fn millis(self) -> i64 {
        INTERVALS.iter().find(|(i, _, _)| *i == self).map_or(0, |(_, _, ms)| *ms)
    }

    /// Every interval, shortest first.
    pub fn all() -> impl Iterator<Item = Interval> {
        INTERVALS.iter().map(|(i, _, _)| *i)
    }
}

/// An interval name that is not one of `1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval {0:?}; expected one of 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w")]
pub struct UnknownInterval(pub String);

impl FromStr for Interval {
    type Err = UnknownInterval;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        INTERVALS.iter().find(|(_, name, _)| *name == s).map(|(i, _, _)| *i).ok_or_else(|| UnknownInterval(s.into()))
    }
}

impl TryFrom<String> for Interval {
    type Error = UnknownInterval;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Interval> for String {
    fn from(i: Interval) -> String {
        i.as_str().to_string()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why values are not a valid bar.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarError {
    #[error("{field} is {value}, not a finite number")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} is {value}: prices must be positive")]
    NonPositivePrice { field: &'static str, value: f64 },
    #[error("volume is {value}: it cannot be negative")]
    NegativeVolume { value: f64 },
    #[error("high {high} is below low {low}")]
    HighBelowLow { high: f64, low: f64 },
    #[error("{field} {value} is outside the bar's range [low {low}, high {high}]")]
    OutsideRange { field: &'static str, value: f64, low: f64, high: f64 },
}

/// One OHLCV bar: open time (ms since the epoch, UTC), prices, base-asset volume. Validated
/// when made, and again when deserialized: a NaN or an impossible bar never gets past a
/// constructor, so indicators' running sums cannot be poisoned by one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireBar", into = "WireBar")]
pub struct Bar {
    open_time: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// The serialized shape of a [`Bar`]: short keys, validated on the way in.
#[derive(Serialize, Deserialize)]
struct WireBar {
    t: i64,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

impl TryFrom<WireBar> for Bar {
    type Error = BarError;
    fn try_from(r: WireBar) -> Result<Self, BarError> {
        Bar::new(r.t, r.o, r.h, r.l, r.c, r.v)
    }
}

impl From<Bar> for WireBar {
    fn from(b: Bar) -> Self {
        WireBar { t: b.open_time, o: b.open, h: b.high, l: b.low, c: b.close, v: b.volume }
    }
}

impl Bar {
    /// Checks that every value is finite, prices are positive, volume is not negative and
    /// low ≤ open, close ≤ high.
    pub fn new(open_time: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) -> Result<Self, BarError> {
        for (field, value) in [("open", open), ("high", high), ("low", low), ("close", close), ("volume", volume)] {
            if !value.is_finite() {
                return Err(BarError::NotFinite { field, value });
            }
        }
        for (field, value) in [("open", open), ("high", high), ("low", low), ("close", close)] {
            if value <= 0.0 {
                return Err(BarError::NonPositivePrice { field, value });
            }
        }
        if volume < 0.0 {
            return Err(BarError::NegativeVolume { value: volume });
        }
        if high < low {
            return Err(BarError::HighBelowLow { high, low });
        }
        for (field, value) in [("open", open), ("close", close)] {
            if value < low || value > high {
                return Err(BarError::OutsideRange { field, value, low, high });
            }
        }
        Ok(Self { open_time, open, high, low, close, volume })
    }

    pub fn open_time(&self) -> i64 {
        self.open_time
    }
    pub fn open(&self) -> f64 {
        self.open
    }
    pub fn high(&self) -> f64 {
        self.high
    }
    pub fn low(&self) -> f64 {
        self.low
    }
    pub fn close(&self) -> f64 {
        self.close
    }
    pub fn volume(&self) -> f64 {
        self.volume
    }
}

/// Bar values as a source delivers them, before validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBar {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl RawBar {
    pub fn validate(&self) -> Result<Bar, BarError> {
        Bar::new(self.open_time, self.open, self.high, self.low, self.close, self.volume)
    }
}

/// A closed candle on `md.candles` (key = symbol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    /// Where it came from: `binance`, `csv`, `synthetic`, ...
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    pub bar: Bar,
    /// Built here from bars of a shorter interval rather than delivered by the source.
    pub aggregated: bool,
}

impl Candle {
    /// `source:symbol:interval:open_time` (DESIGN invariant 2).
    pub fn id(&self) -> MessageId {
        MessageId::candle(&self.source, &self.symbol, self.interval.as_str(), self.bar.open_time())
    }

    /// Open time of the next bar.
    pub fn close_time(&self) -> i64 {
        self.bar.open_time() + self.interval.millis()
    }
}

impl Payload for Candle {
    const KIND: &'static str = "candle";
    const VERSION: u16 = 1;
}

/// Why ingestion refused a bar. A closed set so that it can label metrics and be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// A field is missing or not a number.
    Malformed,
    /// Values that cannot be a bar (NaN, high < low, negative volume, ...).
    InvalidBar,
    /// Open time before the last accepted bar of the same series.
    TimeBackwards,
    /// Same open time as an accepted bar, different values.
    ConflictingDuplicate,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidBar => "invalid_bar",
            Self::TimeBackwards => "time_backwards",
            Self::ConflictingDuplicate => "conflicting_duplicate",
        }
    }
}

/// A bar that ingestion refused: never a candle, always an audit event with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandleRefused {
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    /// Open time when it could be read.
    pub open_time: Option<i64>,
    pub kind: RefusalKind,
    /// What exactly was wrong (field, value, expectation).
    pub reason: String,
}

impl CandleRefused {
    /// `<source>:<symbol>:<interval>:<open time or "?">/refused`; a refusal of a repeated bad
    /// bar is the same message.
    pub fn id(&self) -> MessageId {
        let t = self.open_time.map_or_else(|| "?".to_string(), |t| t.to_string());
        MessageId::from_parts(&[&self.source, &self.symbol, self.interval.as_str(), &t]).child("refused")
    }
}

impl Payload for CandleRefused {
    const KIND: &'static str = "candle_refused";
    const VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print() {
        for i in Interval::all() {
            assert_eq!(i.as_str().parse::<Interval>(), Ok(i));
        }
        assert_eq!(Interval::H4.millis(), 4 * 3_600_000);
        assert!("2d".parse::<Interval>().unwrap_err().to_string().contains("unknown interval \"2d\""));
    }

    #[test]
    fn impossible_bars_are_refused_by_name() {
        assert_eq!(
            Bar::new(0, 1.0, 2.0, 1.0, f64::NAN, 1.0).unwrap_err().to_string(),
            "close is NaN, not a finite number"
        );
        assert!(matches!(Bar::new(0, 1.0, 2.0, 0.0, 1.0, 1.0), Err(BarError::NonPositivePrice { field: "low", .. })));
        assert!(matches!(Bar::new(0, 1.0, 2.0, 1.0, 1.0, -1.0), Err(BarError::NegativeVolume { .. })));
        assert!(matches!(Bar::new(0, 1.0, 1.0, 2.0, 1.0, 1.0), Err(BarError::HighBelowLow { .. })));
        assert_eq!(
            Bar::new(0, 3.0, 2.0, 1.0, 1.5, 1.0).unwrap_err().to_string(),
            "open 3 is outside the bar's range [low 1, high 2]"
        );
        assert!(Bar::new(1, 5.0, 5.0, 5.0, 5.0, 0.0).is_ok(), "a flat bar with no volume is a real bar");
    }

    #[test]
    fn a_decoded_bar_is_validated_too() {
        let json = r#"{"t":1,"o":1.0,"h":0.5,"l":1.0,"c":1.0,"v":1.0}"#;
        let err = serde_json::from_str::<Bar>(json).unwrap_err().to_string();
        assert!(err.contains("high 0.5 is below low 1"), "{err}");
    }

    #[test]
    fn candle_ids_name_their_cause() {
        let c = Candle {
            source: "csv".into(),
            symbol: "BTCUSD".into(),
            interval: Interval::H1,
            bar: Bar::new(1_498_906_800_000, 2505.56, 2513.38, 2495.12, 2509.17, 114.6).unwrap(),
            aggregated: false,
        };
        assert_eq!(c.id().as_str(), "csv:BTCUSD:1h:1498906800000");
        assert_eq!(c.close_time(), 1_498_910_400_000);
    }
}
