//! Wall-clock helpers. Times on the wire are epoch milliseconds (UTC) everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock before 1970 reads as 0 rather than panicking.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's `days_from_civil`).
/// The one copy of the calendar maths: ids, prompts, reports and the API all agree on dates.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1–12, day 1–31) of a day number (days since 1970-01-01), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-05-01T10:00:00` from epoch milliseconds (UTC).
pub fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYY-MM-DD` (UTC midnight) or epoch milliseconds, as the command line takes dates.
pub fn parse_day_or_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s:?}: expected YYYY-MM-DD (UTC) or epoch milliseconds");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (y, m, d) = (
        y.parse::<i64>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    // Four-digit years only: the calendar maths overflows for years far out of range (a
    // panic in a debug build, a wrong date in a release one).
    if !(0..=9999).contains(&y) {
        return Err(format!("{s:?}: the year must be from 0000 to 9999 (YYYY-MM-DD, UTC)"));
    }
    let days = days_from_civil(y, m, d);
    // A day the month does not have (2018-02-30) comes back as another date.
    if !(1..=12).contains(&m) || civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target `edge_task_params`, issue #23): dates with a 24-digit and an
    /// 11-digit year, a download's and a backtest's `to` over the API, overflowed
    /// `days_from_civil` and the conversion to milliseconds ("attempt to multiply with
    /// overflow") instead of being refused.
    #[test]
    fn a_year_out_of_range_is_refused_not_overflowed() {
        for crash in ["000002568933099216597449-01-01", "22222222227-01-01"] {
            assert_eq!(
                parse_day_or_ms(crash).unwrap_err(),
                format!("{crash:?}: the year must be from 0000 to 9999 (YYYY-MM-DD, UTC)")
            );
        }
        for s in ["10000-01-01", "9223372036854775807-12-31"] {
            assert!(parse_day_or_ms(s).unwrap_err().contains("the year must be from 0000 to 9999"), "{s}");
        }
        assert_eq!(parse_day_or_ms("9999-12-31"), Ok(days_from_civil(9999, 12, 31) * 86_400_000));
        assert_eq!(parse_day_or_ms("0000-01-01"), Ok(days_from_civil(0, 1, 1) * 86_400_000));
    }

    #[test]
    fn civil_dates_round_trip_over_four_centuries() {
        for days in -146_097..2 * 146_097 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(17_348), (2017, 7, 1));
        assert_eq!(iso_utc(1_498_906_800_000), "2017-07-01T11:00:00");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59");
    }

    #[test]
    fn days_and_milliseconds_parse_and_impossible_days_do_not() {
        assert_eq!(parse_day_or_ms("2017-07-01"), Ok(1_498_867_200_000));
        assert_eq!(parse_day_or_ms("1498906800000"), Ok(1_498_906_800_000));
        for bad in ["2018-02-30", "2018-13-01", "yesterday", "2018-1"] {
            assert!(parse_day_or_ms(bad).unwrap_err().contains("expected YYYY-MM-DD"), "{bad}");
        }
    }
}
