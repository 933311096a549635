//! The HTML report of one account (`report.html` beside `stats.json`): one self-contained
//! file — inline CSS and SVG, no script, nothing fetched (its Content-Security-Policy forbids
//! it) — with the price and the entries (▲) and exits (▼), the equity curve with its drawdown
//! underneath on the same time axis, every statistic of `stats.json`, and the trade list.
//!
//! Each statistic shown carries its exact value as written in `stats.json` (`data-value`, JSON
//! text, also its tooltip) under its key (`data-stat`), so that a reader, or a test, can check
//! the rounded figure against it.

mod chart;
mod text;

use std::collections::HashSet;
use std::fmt::Write;

use tradeflow_analytics::{Bar, Side, Span, Timestamp, Trade};

use crate::report::AccountReport;
use chart::{TimeAxis, ValueAxis};
pub use text::esc;
use text::{num, ordered_fields, stat_text};

/// The statistics shown as cards above the charts: key in `stats.json`, label.
const HEADLINE: [(&str, &str); 7] = [
    ("Return [%]", "Return"),
    ("Buy & Hold Return [%]", "Buy & hold"),
    ("Max. Drawdown [%]", "Max. drawdown"),
    ("Sharpe Ratio", "Sharpe ratio"),
    ("Win Rate [%]", "Win rate"),
    ("# Trades", "Trades"),
    ("Equity Final [$]", "Final equity"),
];

/// The page of `report`, whose equity points are at `bars` (the run's bars of its symbol,
/// [`crate::Report::bars`]); `notes` say how the run differs from a live one.
pub fn account_html(report: &AccountReport, bars: &[Bar], notes: &[String]) -> String {
    let stats = report.stats.as_ref().map(ordered_fields).unwrap_or_default();
    let times = bars.iter().map(|b| b.time_ms).chain(report.equity.iter().map(|p| p.time_ms));
    let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let axis = (t0 <= t1).then_some(TimeAxis { t0, t1 });

    let mut page = String::with_capacity(64 * 1024 + report.trades.len() * 420);
    let title = format!("Backtest {} · {}", report.id, report.symbol);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    header(&mut page, report, bars, notes);
    cards(&mut page, &stats);
    page.push_str("<div class=\"layout\">\n<div class=\"charts\">\n");
    match axis {
        Some(axis) => {
            price_chart(&mut page, bars, &report.trades, &axis);
            equity_chart(&mut page, report, &axis);
        }
        None => page.push_str("<section class=\"panel\"><p class=\"sub\">No bar: nothing to chart.</p></section>\n"),
    }
    page.push_str("</div>\n");
    stats_table(&mut page, &stats, report.stats_error.as_deref());
    page.push_str("</div>\n");
    trade_list(&mut page, &report.trades, bars);
    page.push_str(
        "<footer>Written by <code>tradeflow backtest --out</code>. Statistics follow backtesting.py 0.6.6's \
         definitions; hover a figure for its exact value, as in <code>stats.json</code>.</footer>\n</main>\n</body>\n</html>\n",
    );
    page
}

fn header(page: &mut String, report: &AccountReport, bars: &[Bar], notes: &[String]) {
    let span = match (bars.first(), bars.last()) {
        (Some(a), Some(b)) => format!("{} → {}", when(a.time_ms), when(b.time_ms)),
        _ => "no bars".into(),
    };
    let _ = write!(
        page,
        "<header>\n<h1>{} <span class=\"sub\">· {}</span></h1>\n<p class=\"sub\">{} · {} bars · {} trades · \
         final balance {} · {} fills, {} orders, {} rejected</p>\n",
        esc(&report.id),
        esc(&report.symbol),
        esc(&span),
        num(bars.len() as f64, 0),
        num(report.trades.len() as f64, 0),
        num(report.final_balance, 2),
        num(report.fill_count as f64, 0),
        num(report.order_count as f64, 0),
        num(report.rejection_count as f64, 0),
    );
    if !notes.is_empty() {
        page.push_str("<ul class=\"notes\">");
        for n in notes {
            let _ = write!(page, "<li>{}</li>", esc(n));
        }
        page.push_str("</ul>\n");
    }
    page.push_str("</header>\n");
}

fn cards(page: &mut String, stats: &[(String, serde_json::Value)]) {
    page.push_str("<div class=\"cards\">\n");
    for (key, label) in HEADLINE {
        let Some((_, value)) = stats.iter().find(|(k, _)| k == key) else { continue };
        let mut shown = stat_text(key, value);
        if key.ends_with("[%]") && value.is_number() {
            shown.push_str(" %");
        }
        let sign = match value.as_f64() {
            Some(x) if key.starts_with("Return") && x > 0.0 => " pos",
            Some(x) if key.starts_with("Return") && x < 0.0 => " neg",
            _ => "",
        };
        let exact = esc(&value.to_string());
        let _ = writeln!(
            page,
            "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value{sign}\" data-stat=\"{}\" \
             data-value=\"{exact}\" title=\"{exact}\">{}</div></div>",
            esc(label),
            esc(key),
            esc(&shown)
        );
    }
    page.push_str("</div>\n");
}

fn price_chart(page: &mut String, bars: &[Bar], trades: &[Trade], axis: &TimeAxis) {
    let (top, height) = (14.0, 340.0);
    let prices = bars.iter().map(|b| b.close).chain(trades.iter().flat_map(|t| [t.entry_price, t.exit_price]));
    let (lo, hi) = prices.filter(|p| p.is_finite()).fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p), hi.max(p)));
    let values = ValueAxis::new(lo, hi, 5, top, height);
    let total = values.bottom() + 30.0;
    let _ = write!(
        page,
        "<section class=\"panel\">\n<h2>Price <span class=\"legend\"><i class=\"k-price\"></i>close \
         <b class=\"k-entry\">▲</b>entry <b class=\"k-exit\">▼</b>exit</span></h2>\n\
         <svg id=\"price-chart\" viewBox=\"0 0 {} {total}\" role=\"img\" aria-label=\"Close price with the trades' entries and exits\">",
        chart::WIDTH
    );
    chart::value_grid(page, &values, |v| num(v, values.decimals()));
    chart::time_grid(page, axis, top, values.bottom(), true);
    // Markers that land on the same spot are drawn once: 545 trades over 20,000 bars overlap.
    let marks = |page: &mut String, class: &str, what: &str, points: Vec<(i64, f64)>, up: bool| {
        let mut seen = HashSet::new();
        let mut d = String::new();
        for (t, p) in points {
            if !p.is_finite() {
                continue;
            }
            let (x, y) = (axis.x(t), values.y(p));
            if seen.insert(((x * 2.0).round() as i64, (y * 2.0).round() as i64)) {
                // ▲ under the price, its tip 2 below; ▼ over it: the line stays visible.
                let (tip, side) = if up { (y + 2.5, 6) } else { (y - 2.5, -6) };
                let _ = write!(d, "M{x:.1},{tip:.1}l-3,{side}h6z");
            }
        }
        let n = if class == "entry" { "entries" } else { "exits" };
        let _ = write!(page, "<path class=\"{class}\" d=\"{d}\"><title>{what}: {} {n}</title></path>", trades.len());
    };
    marks(page, "entry", "▲ entry", trades.iter().map(|t| (t.entry_time_ms, t.entry_price)).collect(), true);
    marks(page, "exit", "▼ exit", trades.iter().map(|t| (t.exit_time_ms, t.exit_price)).collect(), false);
    // The line over the markers, so that hundreds of trades do not hide the price.
    let line = chart::extremes(bars.iter().map(|b| (b.time_ms, b.close)), axis);
    let _ = write!(page, "<path class=\"price\" d=\"{}\"/>", chart::line_path(&line, &values));
    page.push_str("</svg>\n</section>\n");
}

fn equity_chart(page: &mut String, report: &AccountReport, axis: &TimeAxis) {
    let points = &report.equity;
    let (lo, hi) = points
        .iter()
        .map(|p| p.equity)
        .filter(|e| e.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), e| (lo.min(e), hi.max(e)));
    let equity = ValueAxis::new(lo, hi, 5, 14.0, 260.0);
    let deepest = points.iter().map(|p| p.drawdown).filter(|d| d.is_finite()).fold(0.0, f64::max);
    // Drawdown in percent below the peak, as "Max. Drawdown [%]" is written: 0 at the top.
    let drawdown = ValueAxis::new(-deepest * 100.0, 0.0, 3, equity.bottom() + 26.0, 120.0);
    let total = drawdown.bottom() + 30.0;
    let _ = write!(
        page,
        "<section class=\"panel\">\n<h2>Equity <span class=\"legend\"><i class=\"k-equity\"></i>equity \
         <i class=\"k-dd\"></i>drawdown below the running peak</span></h2>\n\
         <svg id=\"equity-chart\" viewBox=\"0 0 {} {total}\" role=\"img\" aria-label=\"Equity curve with its drawdown underneath\">",
        chart::WIDTH
    );
    chart::value_grid(page, &equity, |v| num(v, equity.decimals()));
    chart::value_grid(page, &drawdown, |v| format!("{} %", num(v, drawdown.decimals())));
    chart::time_grid(page, axis, equity.top, equity.bottom(), false);
    chart::time_grid(page, axis, drawdown.top, drawdown.bottom(), true);
    let _ = write!(
        page,
        "<text class=\"panel-label\" x=\"{:.1}\" y=\"{:.1}\">Drawdown</text>",
        chart::LEFT + 6.0,
        drawdown.top - 6.0
    );
    let line = chart::extremes(points.iter().map(|p| (p.time_ms, p.equity)), axis);
    let _ = write!(page, "<path class=\"equity\" d=\"{}\"/>", chart::line_path(&line, &equity));
    let depth = chart::column_max(points.iter().map(|p| (p.time_ms, p.drawdown)), axis);
    if let (Some(first), Some(last)) = (depth.first(), depth.last()) {
        let area: Vec<(f64, f64)> = depth.iter().map(|(x, d)| (*x, -d * 100.0)).collect();
        let zero = drawdown.y(0.0);
        let _ = write!(
            page,
            "<path class=\"dd\" d=\"M{:.1},{zero:.1}{}L{:.1},{zero:.1}Z\"/>",
            first.0,
            chart::line_path(&area, &drawdown).replacen('M', "L", 1),
            last.0
        );
    }
    page.push_str("</svg>\n</section>\n");
}

fn stats_table(page: &mut String, stats: &[(String, serde_json::Value)], error: Option<&str>) {
    page.push_str("<aside class=\"panel\">\n<h2>Statistics</h2>\n");
    if let Some(e) = error {
        let _ = writeln!(page, "<p class=\"warn\">Statistics not computed: {}</p>", esc(e));
    }
    page.push_str("<table class=\"stats\"><tbody>\n");
    for (key, value) in stats {
        let exact = esc(&value.to_string());
        let tip = if value.is_null() { "undefined (null in stats.json)".to_string() } else { exact.clone() };
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td class=\"num\" data-stat=\"{}\" data-value=\"{exact}\" title=\"{tip}\">{}</td></tr>",
            esc(key),
            esc(key),
            esc(&stat_text(key, value))
        );
    }
    page.push_str("</tbody></table>\n</aside>\n");
}

fn trade_list(page: &mut String, trades: &[Trade], bars: &[Bar]) {
    let decimals = price_decimals(bars);
    let _ = write!(
        page,
        "<section class=\"panel\">\n<h2>Trades <span class=\"sub\">({})</span></h2>\n<div class=\"scroll\">\
         <table class=\"trades\"><thead><tr><th class=\"num\">#</th><th>Side</th><th>Entry</th><th>Exit</th>\
         <th class=\"num\">Entry price</th><th class=\"num\">Exit price</th><th class=\"num\">Size</th>\
         <th class=\"num\">P&amp;L</th><th class=\"num\">Return</th><th class=\"num\">Duration</th><th>Exit reason</th>\
         </tr></thead><tbody>\n",
        num(trades.len() as f64, 0)
    );
    for (i, t) in trades.iter().enumerate() {
        let class = if t.pnl > 0.0 {
            "pos"
        } else if t.pnl < 0.0 {
            "neg"
        } else {
            ""
        };
        let reason = serde_json::to_value(t.exit_reason)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num {class}\">{}</td>\
             <td class=\"num {class}\">{} %</td><td class=\"num\">{}</td><td>{}</td></tr>",
            i + 1,
            if t.side == Side::Long { "long" } else { "short" },
            when(t.entry_time_ms),
            when(t.exit_time_ms),
            num(t.entry_price, decimals),
            num(t.exit_price, decimals),
            size(t.size),
            num(t.pnl, 2),
            num(t.return_pct, 2),
            Span(t.duration_ms),
            esc(&reason)
        );
    }
    if trades.is_empty() {
        page.push_str("<tr><td colspan=\"11\" class=\"sub\">No trade.</td></tr>\n");
    }
    page.push_str("</tbody></table></div>\n</section>\n");
}

/// `2017-07-01 11:00:00` (UTC).
fn when(ms: i64) -> String {
    Timestamp(ms).to_string().replacen('T', " ", 1)
}

/// A size to 1e-8 (the lot step of the presets), without the float noise of lot flooring
/// (3.8976661200000002 → 3.89766612) or trailing zeros.
fn size(x: f64) -> String {
    let s = num(x, 8);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Places that show a price's cents, or its significant digits for assets worth less.
fn price_decimals(bars: &[Bar]) -> usize {
    let mut closes: Vec<f64> = bars.iter().map(|b| b.close.abs()).filter(|c| c.is_finite() && *c > 0.0).collect();
    if closes.is_empty() {
        return 2;
    }
    closes.sort_by(f64::total_cmp);
    let median = closes[closes.len() / 2];
    (4.0 - median.log10().floor()).clamp(2.0, 8.0) as usize
}

const CSS: &str = r#"
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--panel:#f9fafb;--pos:#047857;--neg:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1440px;margin:0 auto;padding:20px 24px}
h1{font-size:22px;margin:0 0 2px;font-weight:650}
h2{font-size:15px;margin:0 0 8px;font-weight:600}
.sub{color:var(--muted);font-weight:400}
.notes{margin:6px 0 0;padding-left:18px;color:var(--muted);font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:18px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:var(--panel)}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}
.layout{display:grid;grid-template-columns:minmax(0,1fr) 370px;gap:18px;align-items:start}
@media (max-width:1100px){.layout{grid-template-columns:minmax(0,1fr)}}
.panel{border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0 0 18px;background:#fff}
.legend{font-size:12px;font-weight:400;color:var(--muted);margin-left:10px}
.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px 0 10px}
.legend b{font-weight:400;margin:0 3px 0 10px}
.k-price{background:#2b6cb0}.k-equity{background:#6d28d9}.k-dd{background:#fecdd3;height:9px!important;border-bottom:1px solid #e11d48}
.k-entry{color:#0e9f6e}.k-exit{color:#d9480f}
svg{display:block;width:100%;height:auto;overflow:visible}
.grid{stroke:#eef0f3;stroke-width:1}
.ylabel,.xlabel,.panel-label{font-size:11px;fill:#6b7280;font-family:inherit}
.ylabel{text-anchor:end}.xlabel{text-anchor:middle}
.price{fill:none;stroke:#2b6cb0;stroke-width:1.5;stroke-linejoin:round}
.entry{fill:#0e9f6e}.exit{fill:#d9480f}
.equity{fill:none;stroke:#6d28d9;stroke-width:1.6;stroke-linejoin:round}
.dd{fill:#fecdd3;stroke:#e11d48;stroke-width:.8}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
.num{text-align:right}
.stats{font-size:13px}.stats th{font-weight:400;color:#374151;white-space:normal;padding-left:0}.stats td{padding-right:0}
.stats td{font-weight:600}
.scroll{max-height:520px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.trades thead th{position:sticky;top:0;background:#f3f4f6;font-weight:600;z-index:1}
.trades tbody tr:nth-child(even){background:#fafafa}
.pos{color:var(--pos)}.neg{color:var(--neg)}
.warn{color:var(--neg)}
footer{color:var(--muted);font-size:12px;margin:8px 0 24px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
@media print{.scroll{max-height:none;overflow:visible}.layout{grid-template-columns:minmax(0,1fr)}}
"#;

#[cfg(test)]
mod tests {
    use tradeflow_analytics::{ExitReason, Fill};

    use super::*;
    use crate::report::EquityPoint;

    fn run(n: usize) -> (AccountReport, Vec<Bar>) {
        let hour = 3_600_000;
        let bars: Vec<Bar> = (0..n)
            .map(|i| {
                let p = 100.0 + (i as f64 / 50.0).sin() * 10.0 + i as f64 * 0.01;
                Bar { time_ms: 1_500_000_000_000 + i as i64 * hour, open: p, high: p + 1.0, low: p - 1.0, close: p }
            })
            .collect();
        let fill = |bar: usize| Fill { bar, time_ms: bars[bar].time_ms, price: bars[bar].open, commission: 0.1 };
        let trades: Vec<Trade> = (0..n / 40)
            .map(|k| Trade::from_fills(Side::Long, 1.5, fill(k * 40 + 5), fill(k * 40 + 25), ExitReason::Signal))
            .collect();
        let curve: Vec<f64> = bars.iter().map(|b| 10_000.0 + b.close - 100.0).collect();
        let stats = tradeflow_analytics::compute_stats(&bars, &trades, &curve, &Default::default()).unwrap();
        let mut peak = f64::MIN;
        let equity = bars
            .iter()
            .zip(&curve)
            .enumerate()
            .map(|(i, (b, e))| {
                peak = peak.max(*e);
                EquityPoint { time_ms: b.time_ms, bar: i, equity: *e, drawdown: 1.0 - e / peak }
            })
            .collect();
        let report = AccountReport {
            id: "acct <&> \"one\"".into(),
            symbol: "BTC<USD>".into(),
            stats: Some(stats),
            stats_error: None,
            trades,
            equity,
            final_balance: 10_000.0,
            final_equity: 10_000.0,
            fill_count: 2,
            order_count: 2,
            rejection_count: 0,
        };
        (report, bars)
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_is_given() {
        let (report, bars) = run(400);
        let html = account_html(&report, &bars, &["a note with <script>alert(1)</script>".into()]);
        for outside in ["<script", "<link", "<img", "<iframe", "url(", "@import", "http://", "https://", "src="] {
            assert!(!html.contains(outside), "{outside} in the page");
        }
        assert!(html.contains("acct &lt;&amp;&gt; &quot;one&quot;"));
        assert!(html.contains("BTC&lt;USD&gt;"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("default-src 'none'"));
    }

    #[test]
    fn every_statistic_is_shown_with_its_exact_value() {
        let (report, bars) = run(400);
        let html = account_html(&report, &bars, &[]);
        let stats = ordered_fields(report.stats.as_ref().unwrap());
        assert_eq!(stats.len(), 32, "every key of stats.json");
        for (key, value) in &stats {
            let attr = format!("data-stat=\"{}\" data-value=\"{}\"", esc(key), esc(&value.to_string()));
            assert!(html.contains(&attr), "{key}: {attr} missing");
        }
        // One row per trade, and a marker for each entry and exit.
        assert_eq!(html.matches("<tr><td class=\"num\">").count(), report.trades.len());
        assert_eq!(html.matches("l-3,6h6z").count(), report.trades.len());
        assert_eq!(html.matches("l-3,-6h6z").count(), report.trades.len());
    }

    #[test]
    fn a_long_run_stays_a_small_page() {
        let (report, bars) = run(20_000);
        let html = account_html(&report, &bars, &[]);
        let charts_only = account_html(&AccountReport { trades: vec![], ..report.clone() }, &bars, &[]);
        eprintln!(
            "20,000 bars, {} trades: {} bytes; without the trades {} bytes",
            report.trades.len(),
            html.len(),
            charts_only.len()
        );
        // The charts are bounded by their width, not by the 20,000 bars.
        assert!(charts_only.len() < 120_000, "{} bytes", charts_only.len());
        assert!(html.len() < 500_000, "{} bytes", html.len());
    }

    #[test]
    fn sizes_and_prices_read_as_numbers() {
        // Lot flooring leaves float noise in sizes (a trade of the sma_cross reference run).
        assert_eq!(size(3.8976661200000002), "3.89766612");
        assert_eq!(size(2.0), "2");
        assert_eq!(size(1_234.5), "1,234.5");
        let at = |close: f64| vec![Bar { time_ms: 0, open: close, high: close, low: close, close }];
        assert_eq!(price_decimals(&at(8_000.0)), 2);
        assert_eq!(price_decimals(&at(0.0123)), 6);
        assert_eq!(price_decimals(&[]), 2);
    }

    #[test]
    fn without_statistics_the_page_says_why() {
        let (mut report, bars) = run(50);
        report.stats = None;
        report.stats_error = Some("no bar".into());
        let html = account_html(&report, &bars, &[]);
        assert!(html.contains("Statistics not computed: no bar"));
        assert!(!html.contains("data-stat"));
        let empty = account_html(&AccountReport { equity: vec![], trades: vec![], ..report }, &[], &[]);
        assert!(empty.contains("nothing to chart"));
    }
}
