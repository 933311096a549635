//! Several charts in one request: an analyst gets every chart's recent candles, market
//! condition and indicators (the lines the per-candle prompt has, [`super::prompt`]) and,
//! optionally, a question; it answers per chart (action, confidence, reasoning, exits) and
//! overall (a stance, a summary, the answer to the question), in one strict JSON object
//! checked field by field like the per-candle answer ([`super::answer`]).
//!
//! The request goes through the analyst's own machinery ([`Analyst::ask`]): pacing, key
//! fallback, deadline, the `tradeflow_llm_*` counts, tokens and cost. Valid answers are
//! cached for the analyst's `cache_ttl_s` by the charts' last candles (id and close) and the
//! question.
//!
//! ```json
//! {"charts": [{"symbol": "BTCUSD", "interval": "1h", "action": "long", "confidence": 0.7,
//!              "reasoning": "...", "stop_loss": 95, "take_profit": 110}, ...],
//!  "overall": {"action": "long", "confidence": 0.6, "summary": "...", "answer": "..." | null}}
//! ```

use std::fmt::Write;

use serde_json::{Map, Value};
use tokio::time::Instant;
use tradeflow_core::market::{Bar, Interval};
use tradeflow_core::signal::Action;

use super::analyst::{Analyst, Failure};
use super::answer::{Answer, action, check_answer, confidence, describe, json_object, price, text, unknown_fields};
use super::metrics::RequestOutcome;
use super::prompt::{context_lines, num, utc};
use crate::stage::ModelContext;

/// Charts one request may hold.
pub const MAX_CHARTS: usize = 8;
/// Recent candles of each chart the prompt shows (the last ones, the analysed one included).
pub const RECENT_BARS: usize = 20;
/// Longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 1000;

pub const CHARTS_SYSTEM_PROMPT: &str = "You are a disciplined crypto market analyst. You get several charts at \
once: for each, its recent candles, the market condition and technical indicators at its last closed candle, and \
the latest indicators of its other timeframes; and sometimes a question. Decide for each chart whether to go long, \
go short or hold until its next candle, then give your view of the charts together. Reply with exactly one JSON \
object and nothing else (no Markdown, no text around it), with exactly two fields. \"charts\": an array with one \
object per chart, each with exactly these fields: \"symbol\" and \"interval\", as given; \"action\": \"long\", \
\"short\" or \"hold\"; \"confidence\": a number from 0 to 1; \"reasoning\": one or two sentences; \"stop_loss\": a \
price or null; \"take_profit\": a price or null (for long, stop_loss < close < take_profit; for short, take_profit \
< close < stop_loss; for hold, both null). \"overall\": an object with exactly these fields: \"action\": the stance \
the charts suggest together, \"long\", \"short\" or \"hold\"; \"confidence\": a number from 0 to 1; \"summary\": \
two or three sentences on the charts together; \"answer\": the answer to the question, or null when there is none.";

/// Fields of each entry of `charts`.
const CHART_FIELDS: [&str; 7] = ["symbol", "interval", "action", "confidence", "reasoning", "stop_loss", "take_profit"];
const OVERALL_FIELDS: [&str; 4] = ["action", "confidence", "summary", "answer"];

/// One chart: its last closed candle as the analysts see it, and its recent bars, oldest
/// first, that candle's last (only the last [`RECENT_BARS`] are shown).
#[derive(Debug, Clone)]
pub struct Chart {
    pub context: ModelContext,
    pub recent: Vec<Bar>,
}

/// The overall part of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Overall {
    pub action: Action,
    pub confidence: f64,
    pub summary: String,
    /// The answer to the question; `None` when none was asked.
    pub answer: Option<String>,
}

/// A valid answer: one per chart, in the order of the charts asked about, and the overall one.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartsAnswer {
    pub charts: Vec<Answer>,
    pub overall: Overall,
}

/// An answer and how it was had.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartsReply {
    pub answer: ChartsAnswer,
    /// From the analyst's cache: no request made.
    pub cached: bool,
    pub latency_us: u64,
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChartsError {
    /// The charts or the question cannot be asked about; `field` is `charts` or `question`.
    #[error("{message}")]
    Request { field: &'static str, message: String },
    /// The provider gave no valid answer: the `tradeflow_llm_requests_total` outcome
    /// (`malformed`: an answer that is not the JSON asked for, every problem in `reason`).
    #[error("{reason}")]
    Failed { outcome: RequestOutcome, reason: String },
}

impl From<Failure> for ChartsError {
    fn from(f: Failure) -> Self {
        ChartsError::Failed { outcome: f.outcome, reason: f.reason }
    }
}

/// What the answer is checked against: each chart's symbol, interval and close.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    pub symbol: String,
    pub interval: Interval,
    pub close: f64,
}

impl Asked {
    fn of(chart: &Chart) -> Self {
        Asked { symbol: chart.context.symbol.clone(), interval: chart.context.interval, close: chart.context.close }
    }
}

/// The user message about `charts` and `question`.
pub fn charts_prompt(charts: &[Chart], question: Option<&str>) -> String {
    let mut p = String::with_capacity(4096 * charts.len().max(1));
    let _ = writeln!(p, "{} charts.", charts.len());
    for (i, chart) in charts.iter().enumerate() {
        let ctx = &chart.context;
        let _ = writeln!(
            p,
            "Chart {}: {} {} from {}, last candle opened {} UTC, close {}.",
            i + 1,
            ctx.symbol,
            ctx.interval,
            ctx.source,
            utc(ctx.open_time),
            num(ctx.close)
        );
        let recent = &chart.recent[chart.recent.len().saturating_sub(RECENT_BARS)..];
        let _ = writeln!(p, "Recent candles, oldest first (opened UTC: open high low close volume):");
        for b in recent {
            let _ = writeln!(
                p,
                "{}: {} {} {} {} {}",
                utc(b.open_time()),
                num(b.open()),
                num(b.high()),
                num(b.low()),
                num(b.close()),
                num(b.volume())
            );
        }
        context_lines(&mut p, ctx);
    }
    match question {
        Some(q) => {
            let _ = writeln!(p, "Question: {q}");
        }
        None => p.push_str("No question: \"answer\" is null.\n"),
    }
    p.push_str("Answer with the JSON object only.");
    p
}

/// Parses and checks an answer about `asked` (distinct charts); `question`: whether one was
/// asked. Every failure names the field (`charts[1].take_profit`, `overall.summary`) and what
/// was expected; all of them are reported, separated by `; `. Each chart must be answered
/// exactly once, in any order; the answers come back in the order of `asked`.
pub fn parse_charts_answer(content: &str, asked: &[Asked], question: bool) -> Result<ChartsAnswer, String> {
    let obj = json_object(content)?;
    let mut problems = Vec::new();
    unknown_fields(&obj, &["charts", "overall"], "", &mut problems);
    let charts = chart_answers(&obj, asked, &mut problems);
    let overall = match obj.get("overall") {
        Some(Value::Object(o)) => overall(o, question, &mut problems),
        Some(v) => {
            problems.push(format!("overall: expected an object, got {}", describe(v)));
            None
        }
        None => {
            problems.push(format!("overall: missing; expected an object with {}", OVERALL_FIELDS.join(", ")));
            None
        }
    };
    match (charts, overall) {
        (Some(charts), Some(overall)) if problems.is_empty() => Ok(ChartsAnswer { charts, overall }),
        _ => Err(problems.join("; ")),
    }
}

fn name(a: &Asked) -> String {
    format!("{} {}", a.symbol, a.interval)
}

fn chart_answers(obj: &Map<String, Value>, asked: &[Asked], problems: &mut Vec<String>) -> Option<Vec<Answer>> {
    let expected = || {
        let names: Vec<String> = asked.iter().map(name).collect();
        format!("an array of {} objects, one per chart ({})", asked.len(), names.join(", "))
    };
    let items = match obj.get("charts") {
        Some(Value::Array(items)) => items,
        Some(v) => {
            problems.push(format!("charts: expected {}, got {}", expected(), describe(v)));
            return None;
        }
        None => {
            problems.push(format!("charts: missing; expected {}", expected()));
            return None;
        }
    };
    let start = problems.len();
    let mut answers: Vec<Option<Answer>> = vec![None; asked.len()];
    let mut seen = vec![false; asked.len()];
    for (i, item) in items.iter().enumerate() {
        let path = format!("charts[{i}].");
        let Value::Object(o) = item else {
            problems.push(format!("charts[{i}]: expected an object, got {}", describe(item)));
            continue;
        };
        unknown_fields(o, &CHART_FIELDS, &path, problems);
        let symbol = text(o, "symbol", &path, problems);
        let interval = text(o, "interval", &path, problems);
        // The answer's own fields are checked even when the chart cannot be told (all problems
        // at once); against the close of the chart it names.
        let k = match (&symbol, &interval) {
            (Some(s), Some(iv)) => {
                let k = asked.iter().position(|a| a.symbol == *s && a.interval.as_str() == iv);
                match k {
                    None => problems.push(format!(
                        "charts[{i}]: {s} {iv} is not one of the charts asked about ({})",
                        asked.iter().map(name).collect::<Vec<_>>().join(", ")
                    )),
                    Some(k) if seen[k] => problems.push(format!("charts[{i}]: {s} {iv} is answered twice")),
                    Some(_) => {}
                }
                k.filter(|k| !seen[*k])
            }
            _ => None,
        };
        let close = k.map_or(f64::NAN, |k| asked[k].close);
        let mut own = Vec::new();
        let answer = if close.is_nan() {
            // No close to check the exits against: the other fields only.
            check_fields_without_close(o, &path, &mut own);
            None
        } else {
            check_answer(o, close, &path, &mut own)
        };
        problems.extend(own);
        if let Some(k) = k {
            seen[k] = true;
            answers[k] = answer;
        }
    }
    for (a, seen) in asked.iter().zip(&seen) {
        if !seen {
            problems.push(format!("charts: no answer for {}", name(a)));
        }
    }
    if problems.len() > start {
        return None;
    }
    answers.into_iter().collect()
}

/// The answer fields of a chart entry that names no chart asked about: each checked for its
/// type (the exits only as prices: there is no close to put them against).
fn check_fields_without_close(o: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    let _ = action(o, path, problems);
    let _ = confidence(o, path, problems);
    let _ = text(o, "reasoning", path, problems);
    let _ = price(o, "stop_loss", path, problems);
    let _ = price(o, "take_profit", path, problems);
}

fn overall(o: &Map<String, Value>, question: bool, problems: &mut Vec<String>) -> Option<Overall> {
    let start = problems.len();
    unknown_fields(o, &OVERALL_FIELDS, "overall.", problems);
    let action = action(o, "overall.", problems);
    let confidence = confidence(o, "overall.", problems);
    let summary = text(o, "summary", "overall.", problems);
    let answer = match (o.get("answer"), question) {
        (Some(Value::String(s)), true) if !s.trim().is_empty() => Some(Some(s.trim().to_string())),
        (Some(Value::Null), false) => Some(None),
        (Some(v), true) => {
            problems.push(format!(
                "overall.answer: expected the answer to the question, a non-empty string, got {}",
                describe(v)
            ));
            None
        }
        (Some(v), false) => {
            problems.push(format!("overall.answer: expected null (no question was asked), got {}", describe(v)));
            None
        }
        (None, true) => {
            problems.push("overall.answer: missing; expected the answer to the question, a non-empty string".into());
            None
        }
        (None, false) => {
            problems.push("overall.answer: missing; expected null (no question was asked)".into());
            None
        }
    };
    match (action, confidence, summary, answer) {
        (Some(action), Some(confidence), Some(summary), Some(answer)) if problems.len() == start => {
            Some(Overall { action, confidence, summary, answer })
        }
        _ => None,
    }
}

/// The cache key of `charts` and `question`: each chart's last candle (id and close).
fn cache_key(charts: &[Chart], question: Option<&str>) -> String {
    let mut key = String::new();
    for c in charts {
        let _ = write!(key, "{}@{:016x}\u{1f}", c.context.candle_id, c.context.close.to_bits());
    }
    if let Some(q) = question {
        key.push_str(q);
    }
    key
}

/// The problem with `charts` and `question` before anything is sent, if any.
fn request_problem(charts: &[Chart], question: Option<&str>) -> Option<ChartsError> {
    let bad = |field, message: String| Some(ChartsError::Request { field, message });
    if charts.is_empty() || charts.len() > MAX_CHARTS {
        return bad("charts", format!("charts: expected 1 to {MAX_CHARTS} charts, got {}", charts.len()));
    }
    for (i, c) in charts.iter().enumerate() {
        let twin = charts[..i]
            .iter()
            .position(|d| d.context.symbol == c.context.symbol && d.context.interval == c.context.interval);
        if let Some(j) = twin {
            let (s, iv) = (&c.context.symbol, c.context.interval);
            return bad("charts", format!("charts[{i}]: {s} {iv} is charts[{j}] again; give each chart once"));
        }
    }
    if let Some(q) = question {
        let n = q.chars().count();
        if q.trim().is_empty() || n > MAX_QUESTION_CHARS {
            return bad("question", format!("question: expected 1 to {MAX_QUESTION_CHARS} characters, got {n}"));
        }
    }
    None
}

impl Analyst {
    /// One answer about `charts` (1 to [`MAX_CHARTS`], each symbol and interval once) and
    /// `question` (at most [`MAX_QUESTION_CHARS`] characters): from the cache, or one request.
    /// Returns within `timeout_ms` (plus a little).
    pub async fn analyse_charts(&self, charts: &[Chart], question: Option<&str>) -> Result<ChartsReply, ChartsError> {
        let started = Instant::now();
        if let Some(problem) = request_problem(charts, question) {
            return Err(problem);
        }
        let latency = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let key = cache_key(charts, question);
        if let Some(answer) = self.charts_cache.get(&key) {
            self.count(RequestOutcome::Cached);
            return Ok(ChartsReply { answer, cached: true, latency_us: latency() });
        }
        let asked: Vec<Asked> = charts.iter().map(Asked::of).collect();
        let user = charts_prompt(charts, question);
        let answer = self
            // `ask` adds the answer itself to the reason, with the keys redacted.
            .ask(started, CHARTS_SYSTEM_PROMPT, &user, |content| {
                parse_charts_answer(content, &asked, question.is_some())
            })
            .await?;
        self.charts_cache.put(&key, &answer);
        Ok(ChartsReply { answer, cached: false, latency_us: latency() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Vec<Asked> {
        vec![
            Asked { symbol: "BTCUSD".into(), interval: Interval::H1, close: 100.0 },
            Asked { symbol: "ETHUSD".into(), interval: Interval::H4, close: 10.0 },
        ]
    }

    const GOOD: &str = r#"{"charts": [
        {"symbol": "ETHUSD", "interval": "4h", "action": "short", "confidence": 0.4, "reasoning": "weak", "stop_loss": 11, "take_profit": 9},
        {"symbol": "BTCUSD", "interval": "1h", "action": "long", "confidence": 0.7, "reasoning": "strong", "stop_loss": 95, "take_profit": 110}
      ],
      "overall": {"action": "hold", "confidence": 0.3, "summary": "mixed", "answer": null}}"#;

    #[test]
    fn a_good_answer_comes_back_in_the_order_asked() {
        let a = parse_charts_answer(GOOD, &asked(), false).unwrap();
        assert_eq!(a.charts.len(), 2);
        assert_eq!(
            (a.charts[0].action, a.charts[0].stop_loss, a.charts[0].take_profit),
            (Action::Long, Some(95.0), Some(110.0))
        );
        assert_eq!((a.charts[1].action, a.charts[1].reasoning.as_str()), (Action::Short, "weak"));
        assert_eq!(a.overall, Overall { action: Action::Hold, confidence: 0.3, summary: "mixed".into(), answer: None });
        let fenced = format!("```json\n{}\n```", GOOD.replace("\"answer\": null", "\"answer\": \"BTC\""));
        assert_eq!(parse_charts_answer(&fenced, &asked(), true).unwrap().overall.answer.as_deref(), Some("BTC"));
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let cases: [(&str, bool, &str); 8] = [
            ("[]", false, "expected a JSON object, got []"),
            (
                r#"{"charts": [], "overall": {}, "extra": 1}"#,
                false,
                "extra: unknown field; expected only charts, overall",
            ),
            (
                r#"{"charts": {}, "overall": {"action": "hold", "confidence": 0.1, "summary": "s", "answer": null}}"#,
                false,
                "charts: expected an array of 2 objects, one per chart (BTCUSD 1h, ETHUSD 4h), got {}",
            ),
            (
                &GOOD.replace(r#""symbol": "ETHUSD", "interval": "4h""#, r#""symbol": "ETHUSD", "interval": "1h""#),
                false,
                "charts[0]: ETHUSD 1h is not one of the charts asked about (BTCUSD 1h, ETHUSD 4h); charts: no answer for ETHUSD 4h",
            ),
            (
                &GOOD.replace(r#""symbol": "ETHUSD", "interval": "4h""#, r#""symbol": "BTCUSD", "interval": "1h""#),
                false,
                "charts[0].stop_loss: expected a price above the close 100 for a short signal, got 11; charts[1]: BTCUSD 1h is \
                 answered twice; charts: no answer for ETHUSD 4h",
            ),
            (
                &GOOD
                    .replace(r#""stop_loss": 11"#, r#""stop_loss": 9.5"#)
                    .replace(r#""confidence": 0.7"#, r#""confidence": 7"#),
                false,
                "charts[0].stop_loss: expected a price above the close 10 for a short signal, got 9.5; charts[1].confidence: expected a number from 0 to 1, got 7",
            ),
            (GOOD, true, "overall.answer: expected the answer to the question, a non-empty string, got null"),
            (
                &GOOD.replace(r#""summary": "mixed", "answer": null"#, r#""why": "x", "answer": "yes""#),
                false,
                "overall.why: unknown field; expected only action, confidence, summary, answer; overall.summary: missing; expected a non-empty string; overall.answer: expected null (no question was asked), got \"yes\"",
            ),
        ];
        for (content, question, expected) in cases {
            let err = parse_charts_answer(content, &asked(), question).unwrap_err();
            assert!(err.starts_with(expected), "{content}:\n{err}\nexpected: {expected}");
        }
        let missing = parse_charts_answer(r#"{"charts": [{"symbol": "BTCUSD"}]}"#, &asked(), false).unwrap_err();
        for part in [
            "charts[0].interval: missing; expected a non-empty string",
            "charts: no answer for BTCUSD 1h",
            "overall: missing; expected an object with action, confidence, summary, answer",
        ] {
            assert!(missing.contains(part), "{missing}");
        }
    }

    #[test]
    fn requests_out_of_bounds_are_refused_before_sending() {
        assert!(matches!(request_problem(&[], None), Some(ChartsError::Request { field: "charts", .. })));
    }
}
