//! Times and durations as backtesting.py (pandas) writes them, from epoch milliseconds (UTC).
//!
//! Written by hand rather than with a date crate: the statistics only need the civil date of a
//! day number (Howard Hinnant's `civil_from_days`), the weekday, and two string formats.

use std::fmt;

use serde::{Serialize, Serializer};

pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// An instant, in milliseconds since the epoch (UTC). Written like pandas'
/// `Timestamp.isoformat()` of a naive timestamp: `2017-07-01T11:00:00`, with `.ffffff` when
/// the instant has a fraction of a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A length of time in milliseconds. Written like pandas' `str(Timedelta)`:
/// `837 days 22:00:00`, `0 days 00:00:01.500000`, `-1 days +23:00:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub i64);

impl Timestamp {
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl Span {
    pub fn ms(self) -> i64 {
        self.0
    }
}

/// Whole days since the epoch and the milliseconds into that day (both floored).
fn split_day(ms: i64) -> (i64, i64) {
    (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS))
}

pub use tradeflow_core::time::civil_from_days;

/// Day of the week of a day number, Monday = 0 … Sunday = 6 (pandas' `dayofweek`);
/// 1970-01-01 was a Thursday.
pub fn weekday(days: i64) -> u32 {
    (days + 3).rem_euclid(7) as u32
}

/// `HH:MM:SS` of milliseconds into a day, with pandas' six-digit fraction when not whole.
fn clock(f: &mut fmt::Formatter<'_>, ms_of_day: i64) -> fmt::Result {
    let (h, m, s, frac) = (
        ms_of_day / HOUR_MS,
        ms_of_day % HOUR_MS / MINUTE_MS,
        ms_of_day % MINUTE_MS / SECOND_MS,
        ms_of_day % SECOND_MS,
    );
    write!(f, "{h:02}:{m:02}:{s:02}")?;
    if frac != 0 {
        write!(f, ".{:06}", frac * 1_000)?;
    }
    Ok(())
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, in_day) = split_day(self.0);
        let (y, mo, d) = civil_from_days(days);
        write!(f, "{y:04}-{mo:02}-{d:02}T")?;
        clock(f, in_day)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pandas floors to whole days and shows a non-negative clock: −1 h is "-1 days +23:00:00".
        let (days, in_day) = split_day(self.0);
        write!(f, "{days} days ")?;
        if days < 0 {
            f.write_str("+")?;
        }
        clock(f, in_day)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The bar period as backtesting.py infers it (`_data_period`): the median of the gaps between
/// the last 100 bar times. `None` below two bars. (With an even number of gaps the median is the
/// mean of the middle two, floored to the millisecond.)
pub fn data_period(times_ms: &[i64]) -> Option<i64> {
    let tail = &times_ms[times_ms.len().saturating_sub(100)..];
    let mut gaps: Vec<i64> = tail.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let n = gaps.len();
    Some(if n % 2 == 1 { gaps[n / 2] } else { gaps[n / 2 - 1] + (gaps[n / 2] - gaps[n / 2 - 1]).div_euclid(2) })
}

/// The unit durations are rounded up to: pandas' `Timedelta.resolution_string` of the bar period,
/// i.e. its finest non-zero component (1 h → hours, 1 h 30 min → minutes, 1 d → days; a zero
/// period counts as days, as in pandas).
pub fn resolution_ms(period_ms: i64) -> i64 {
    [DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS].into_iter().find(|u| period_ms % u == 0).unwrap_or(1)
}

/// backtesting.py's `_round_timedelta`: `Timedelta.ceil(resolution of the bar period)`, on a
/// duration in nanoseconds (a mean of durations is a whole number of nanoseconds in pandas, so
/// it is carried in nanoseconds until rounded). Without a period (one bar) nothing is rounded.
pub fn round_up_ns(ns: i128, period_ms: Option<i64>) -> Span {
    let Some(period) = period_ms else {
        return Span((ns.div_euclid(1_000_000)) as i64);
    };
    let unit = i128::from(resolution_ms(period)) * 1_000_000;
    let up = (ns + unit - 1).div_euclid(unit) * unit;
    Span((up / 1_000_000) as i64)
}

/// The calendar bucket backtesting.py resamples equity into before annualising
/// (`resample('D' | 'W' | 'ME' | 'YE')`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Day,
    /// Weeks ending on Sunday (pandas' `W` = `W-SUN`).
    Week,
    Month,
    Year,
}

impl Calendar {
    /// A key that is equal for two instants of the same bucket and grows with time.
    pub fn bucket(self, ms: i64) -> i64 {
        let days = ms.div_euclid(DAY_MS);
        match self {
            Calendar::Day => days,
            // The Sunday closing the week.
            Calendar::Week => days + 6 - i64::from(weekday(days)),
            Calendar::Month => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + i64::from(m)
            }
            Calendar::Year => civil_from_days(days).0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_pandas_isoformat() {
        // 1498906800000 is the first bar of the demo feed, 2017-07-01 11:00 UTC.
        assert_eq!(Timestamp(1_498_906_800_000).to_string(), "2017-07-01T11:00:00");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00");
        // pd.Timestamp(1500, unit='ms').isoformat() == '1970-01-01T00:00:01.500000'
        assert_eq!(Timestamp(1_500).to_string(), "1970-01-01T00:00:01.500000");
        // 2000-02-29 (a leap day of a century leap year) = day 11016.
        assert_eq!(Timestamp(11_016 * DAY_MS).to_string(), "2000-02-29T00:00:00");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999000");
    }

    #[test]
    fn spans_are_written_like_pandas_timedelta() {
        assert_eq!(Span(837 * DAY_MS + 22 * HOUR_MS).to_string(), "837 days 22:00:00");
        assert_eq!(Span(20 * HOUR_MS).to_string(), "0 days 20:00:00");
        assert_eq!(Span(0).to_string(), "0 days 00:00:00");
        // str(pd.Timedelta(milliseconds=1500)) == '0 days 00:00:01.500000'
        assert_eq!(Span(1_500).to_string(), "0 days 00:00:01.500000");
        // str(pd.Timedelta(hours=-1)) == '-1 days +23:00:00'
        assert_eq!(Span(-HOUR_MS).to_string(), "-1 days +23:00:00");
    }

    #[test]
    fn weekdays_and_buckets() {
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        // 2017-07-01 (day 17348) was a Saturday; its week ends on Sunday 2017-07-02.
        assert_eq!(weekday(17_348), 5);
        assert_eq!(Calendar::Week.bucket(17_348 * DAY_MS), 17_349);
        assert_eq!(Calendar::Week.bucket(17_349 * DAY_MS + 5), 17_349);
        assert_eq!(Calendar::Week.bucket(17_350 * DAY_MS), 17_356);
        assert_eq!(Calendar::Month.bucket(17_348 * DAY_MS), 2017 * 12 + 7);
        assert_eq!(Calendar::Year.bucket(17_348 * DAY_MS), 2017);
        assert_eq!(Calendar::Day.bucket(17_348 * DAY_MS + 23 * HOUR_MS), 17_348);
    }

    #[test]
    fn period_and_rounding() {
        let hourly: Vec<i64> = (0..500).map(|i| i * HOUR_MS).collect();
        assert_eq!(data_period(&hourly), Some(HOUR_MS));
        assert_eq!(data_period(&[5]), None);
        // Gaps 1 h and 3 h: the median of two is their mean.
        assert_eq!(data_period(&[0, HOUR_MS, 4 * HOUR_MS]), Some(2 * HOUR_MS));
        // Only the last 100 bars count: a long gap early on does not.
        let mut t = vec![0];
        t.extend((0..100).map(|i| 10 * DAY_MS + i * MINUTE_MS));
        assert_eq!(data_period(&t), Some(MINUTE_MS));
        assert_eq!(resolution_ms(HOUR_MS), HOUR_MS);
        assert_eq!(resolution_ms(DAY_MS), DAY_MS);
        assert_eq!(resolution_ms(90 * MINUTE_MS), MINUTE_MS);
        assert_eq!(resolution_ms(0), DAY_MS);
        // pd.Timedelta(hours=1, minutes=1).ceil('h') == 2 h; a whole hour stays.
        assert_eq!(round_up_ns(i128::from(61 * MINUTE_MS) * 1_000_000, Some(HOUR_MS)), Span(2 * HOUR_MS));
        assert_eq!(round_up_ns(i128::from(HOUR_MS) * 1_000_000, Some(HOUR_MS)), Span(HOUR_MS));
        assert_eq!(round_up_ns(1, Some(HOUR_MS)), Span(HOUR_MS));
        assert_eq!(round_up_ns(1_500_000, None), Span(1));
    }
}
