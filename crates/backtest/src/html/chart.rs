//! Charts as inline SVG: one time axis shared by every chart of the page (so an entry on the
//! price chart sits above its move on the equity curve), value axes with round ticks, and
//! series reduced to their lowest and highest value per pixel column, so that a 20,000-bar run
//! draws about as many points as the chart is wide and the page stays small.

use std::fmt::Write;

use tradeflow_analytics::time::{DAY_MS, HOUR_MS};
use tradeflow_core::time::{civil_from_days, days_from_civil};

/// Width of every chart's viewBox; the SVG scales to the page's width.
pub const WIDTH: f64 = 1160.0;
/// Room for the value labels on the left, and a margin on the right.
pub const LEFT: f64 = 80.0;
pub const RIGHT: f64 = 16.0;
/// Most time ticks on an axis.
const TIME_TICKS: i64 = 10;

pub fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

/// Times from the first bar to the last, left to right.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub t0: i64,
    pub t1: i64,
}

impl TimeAxis {
    pub fn x(&self, t: i64) -> f64 {
        if self.t1 <= self.t0 {
            return LEFT + plot_width() / 2.0;
        }
        LEFT + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * plot_width()
    }

    /// Pixel column of `t` (0 ..= plot width).
    fn column(&self, t: i64) -> usize {
        (self.x(t) - LEFT).round().max(0.0) as usize
    }

    /// Round times within the axis and their labels: hours or days for short runs, months or
    /// years (at their first day, UTC) for long ones, at most [`TIME_TICKS`].
    pub fn ticks(&self) -> Vec<(i64, String)> {
        let span = (self.t1 - self.t0).max(1);
        const FIXED: [i64; 9] =
            [HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS, 14 * DAY_MS];
        if let Some(&step) = FIXED.iter().find(|s| span / **s < TIME_TICKS) {
            let mut t = self.t0.div_euclid(step) * step;
            if t < self.t0 {
                t += step;
            }
            let mut out = Vec::new();
            while t <= self.t1 {
                let (y, m, d) = civil_from_days(t.div_euclid(DAY_MS));
                let label = if step < DAY_MS {
                    format!("{m:02}-{d:02} {:02}:00", t.rem_euclid(DAY_MS) / HOUR_MS)
                } else {
                    format!("{y:04}-{m:02}-{d:02}")
                };
                out.push((t, label));
                t += step;
            }
            return out;
        }
        const MONTHS: [i64; 8] = [1, 2, 3, 6, 12, 24, 60, 120];
        let month_ms = DAY_MS * 30_436 / 1_000;
        let step = MONTHS.iter().copied().find(|m| span / (m * month_ms) < TIME_TICKS).unwrap_or(240);
        let (y, m, _) = civil_from_days(self.t0.div_euclid(DAY_MS));
        let mut index = y * 12 + i64::from(m) - 1;
        index = index.div_euclid(step) * step;
        let mut out = Vec::new();
        loop {
            let (y, m) = (index.div_euclid(12), index.rem_euclid(12) + 1);
            let t = days_from_civil(y, m as u32, 1) * DAY_MS;
            if t > self.t1 {
                break;
            }
            if t >= self.t0 {
                const NAMES: [&str; 12] =
                    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
                let label = if step >= 12 { format!("{y}") } else { format!("{} {y}", NAMES[(m - 1) as usize]) };
                out.push((t, label));
            }
            index += step;
        }
        out
    }
}

/// Values from `lo` (bottom) to `hi` (top) of a band `top .. top + height` of the viewBox,
/// widened to round ticks.
#[derive(Debug, Clone, Copy)]
pub struct ValueAxis {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub top: f64,
    pub height: f64,
}

impl ValueAxis {
    /// About `ticks` round ticks over `lo ..= hi`.
    pub fn new(lo: f64, hi: f64, ticks: usize, top: f64, height: f64) -> Self {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0)) };
        let step = nice_step((hi - lo) / ticks.max(1) as f64);
        Self { lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, step, top, height }
    }

    pub fn y(&self, v: f64) -> f64 {
        self.top + (self.hi - v) / (self.hi - self.lo) * self.height
    }

    pub fn bottom(&self) -> f64 {
        self.top + self.height
    }

    pub fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        // Multiples of the step, so that 0.30000000000000004 is written 0.3.
        (0..=n).map(|i| ((self.lo / self.step).round() + i as f64) * self.step).collect()
    }

    /// Decimals that tell the ticks apart.
    pub fn decimals(&self) -> usize {
        (-self.step.log10().floor()).clamp(0.0, 8.0) as usize
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let f = raw / power;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// `points` (time, value) reduced to their lowest and highest value per pixel column, in the
/// order they came: the line drawn through them has the same envelope as the full series.
/// Values that are not finite are left out.
pub fn extremes(points: impl IntoIterator<Item = (i64, f64)>, axis: &TimeAxis) -> Vec<(f64, f64)> {
    // A pixel column, then (index, value) of its lowest and highest point.
    type Column = (usize, (usize, f64), (usize, f64));
    let mut out = Vec::new();
    let mut current: Option<Column> = None;
    let flush = |out: &mut Vec<(f64, f64)>, c: Column| {
        let x = LEFT + c.0 as f64;
        let (lo, hi) = (c.1, c.2);
        let (first, second) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        out.push((x, first.1));
        if second.0 != first.0 {
            out.push((x, second.1));
        }
    };
    for (i, (t, v)) in points.into_iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let col = axis.column(t);
        match &mut current {
            Some((c, lo, hi)) if *c == col => {
                if v < lo.1 {
                    *lo = (i, v);
                }
                if v > hi.1 {
                    *hi = (i, v);
                }
            }
            _ => {
                if let Some(c) = current.take() {
                    flush(&mut out, c);
                }
                current = Some((col, (i, v), (i, v)));
            }
        }
    }
    if let Some(c) = current {
        flush(&mut out, c);
    }
    out
}

/// The highest value of `points` per pixel column (a drawdown area's depth).
pub fn column_max(points: impl IntoIterator<Item = (i64, f64)>, axis: &TimeAxis) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut last_col = None;
    for (t, v) in points {
        if !v.is_finite() {
            continue;
        }
        let col = axis.column(t);
        match out.last_mut() {
            Some(last) if last_col == Some(col) => last.1 = last.1.max(v),
            _ => {
                out.push((LEFT + col as f64, v));
                last_col = Some(col);
            }
        }
    }
    out
}

/// An SVG path through `points` (x, value).
pub fn line_path(points: &[(f64, f64)], axis: &ValueAxis) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    for (i, (x, v)) in points.iter().enumerate() {
        let _ = write!(d, "{}{x:.1},{:.1}", if i == 0 { "M" } else { "L" }, axis.y(*v));
    }
    d
}

/// Horizontal grid lines with their labels (`label` formats a tick) on the left.
pub fn value_grid(svg: &mut String, axis: &ValueAxis, label: impl Fn(f64) -> String) {
    for v in axis.ticks() {
        let y = axis.y(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="ylabel" x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            super::text::esc(&label(v))
        );
    }
}

/// Vertical grid lines from `top` to `bottom`, with the time labels under `bottom` when
/// `labels`.
pub fn time_grid(svg: &mut String, axis: &TimeAxis, top: f64, bottom: f64, labels: bool) {
    for (t, label) in axis.ticks() {
        let x = axis.x(t);
        let _ = write!(svg, r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}"/>"#);
        if labels {
            let _ = write!(
                svg,
                r#"<text class="xlabel" x="{x:.1}" y="{:.1}">{}</text>"#,
                bottom + 18.0,
                super::text::esc(&label)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_series_keeps_its_extremes_in_about_two_points_per_column() {
        let axis = TimeAxis { t0: 0, t1: 19_999 * HOUR_MS };
        let series: Vec<(i64, f64)> =
            (0..20_000).map(|i| (i * HOUR_MS, ((i as f64) / 37.0).sin() * 100.0 + i as f64)).collect();
        let reduced = extremes(series.iter().copied(), &axis);
        let columns = plot_width() as usize + 1;
        assert!(reduced.len() <= 2 * columns, "{} points for {columns} columns", reduced.len());
        assert!(reduced.len() >= columns, "{} points", reduced.len());
        let max = series.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let min = series.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert_eq!(reduced.iter().map(|p| p.1).fold(f64::MIN, f64::max), max);
        assert_eq!(reduced.iter().map(|p| p.1).fold(f64::MAX, f64::min), min);
        assert!(reduced.windows(2).all(|w| w[0].0 <= w[1].0), "left to right");
        assert!(reduced.iter().all(|p| p.0 >= LEFT && p.0 <= WIDTH - RIGHT));
        let deepest = column_max(series.iter().map(|p| (p.0, -p.1)), &axis);
        assert!(deepest.len() <= columns);
        assert_eq!(deepest.iter().map(|p| p.1).fold(f64::MIN, f64::max), -min);
    }

    #[test]
    fn value_axes_are_round_and_cover_the_data() {
        let a = ValueAxis::new(2_449.6, 19_345.5, 5, 10.0, 300.0);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 20_000.0, 5_000.0));
        assert_eq!(a.ticks(), [0.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0]);
        assert_eq!((a.y(20_000.0), a.y(0.0)), (10.0, 310.0));
        let b = ValueAxis::new(-0.31, 0.0, 4, 0.0, 100.0);
        assert_eq!(b.ticks().last(), Some(&0.0));
        assert_eq!(b.ticks()[0], -0.4);
        assert_eq!(b.decimals(), 1);
        // One value (a flat line) still spans a band.
        let c = ValueAxis::new(10_000.0, 10_000.0, 4, 0.0, 100.0);
        assert!(c.lo < 10_000.0 && c.hi > 10_000.0);
    }

    #[test]
    fn time_ticks_fall_on_round_dates() {
        // The demo feed: 2017-07-01T11:00 to 2019-10-16 (about 837 days): quarters.
        let axis = TimeAxis { t0: 1_498_906_800_000, t1: 1_498_906_800_000 + 837 * DAY_MS + 22 * HOUR_MS };
        let ticks = axis.ticks();
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels[0], "Oct 2017");
        assert!(labels.len() <= TIME_TICKS as usize && labels.len() >= 4, "{labels:?}");
        assert!(ticks.iter().all(|t| t.0 >= axis.t0 && t.0 <= axis.t1));
        assert_eq!(days_from_civil(2017, 10, 1) * DAY_MS, ticks[0].0);
        // Two days of hourly bars: 6-hour ticks.
        let short = TimeAxis { t0: 0, t1: 2 * DAY_MS };
        assert_eq!(short.ticks()[1].1, "01-01 06:00");
    }
}
