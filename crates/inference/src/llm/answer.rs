//! The analyst's answer: one strict JSON object, validated field by field.
//!
//! `{"action": "long"|"short"|"hold", "confidence": 0..1, "reasoning": "...", "stop_loss":
//! number|null, "take_profit": number|null}`; every field is required, no other is allowed.
//! The object may be wrapped in a Markdown code fence (```` ```json ... ``` ````), nothing else.

use serde_json::{Map, Value};
use tradeflow_core::signal::Action;

const FIELDS: [&str; 5] = ["action", "confidence", "reasoning", "stop_loss", "take_profit"];

/// A valid answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub action: Action,
    pub confidence: f64,
    pub reasoning: String,
    /// `None` for hold, whatever the model said.
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

/// The JSON text of `content`: the content itself, or the inside of one code fence around it.
fn unfence(content: &str) -> &str {
    let t = content.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    let Some(inner) = rest.strip_suffix("```") else { return t };
    let inner = inner.strip_prefix("json").or_else(|| inner.strip_prefix("JSON")).unwrap_or(inner);
    // The language tag must end the fence's first line.
    if inner.starts_with(['\n', '\r', ' ']) { inner.trim() } else { t }
}

pub(crate) fn describe(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    super::clip(&s, 60)
}

/// The JSON object of `content` (plain, or in one code fence).
pub(crate) fn json_object(content: &str) -> Result<Map<String, Value>, String> {
    let text = unfence(content);
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    match value {
        Value::Object(obj) => Ok(obj),
        other => Err(format!("expected a JSON object, got {}", describe(&other))),
    }
}

/// A problem for every key of `obj` not in `allowed`, named `{path}{key}`.
pub(crate) fn unknown_fields(obj: &Map<String, Value>, allowed: &[&str], path: &str, problems: &mut Vec<String>) {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.push(format!("{path}{key}: unknown field; expected only {}", allowed.join(", ")));
        }
    }
}

/// Parses and checks an answer about a candle that closed at `close`. Every failure names the
/// field and what was expected; all of them are reported, separated by `; `.
pub fn parse_answer(content: &str, close: f64) -> Result<Answer, String> {
    let obj = json_object(content)?;
    let mut problems = Vec::new();
    unknown_fields(&obj, &FIELDS, "", &mut problems);
    match check_answer(&obj, close, "", &mut problems) {
        Some(answer) if problems.is_empty() => Ok(answer),
        _ => Err(problems.join("; ")),
    }
}

/// `action`: one of the three, or a problem.
pub(crate) fn action(obj: &Map<String, Value>, path: &str, problems: &mut Vec<String>) -> Option<Action> {
    match obj.get("action") {
        Some(Value::String(s)) if s == "long" => Some(Action::Long),
        Some(Value::String(s)) if s == "short" => Some(Action::Short),
        Some(Value::String(s)) if s == "hold" => Some(Action::Hold),
        Some(v) => {
            problems.push(format!("{path}action: expected \"long\", \"short\" or \"hold\", got {}", describe(v)));
            None
        }
        None => {
            problems.push(format!("{path}action: missing; expected \"long\", \"short\" or \"hold\""));
            None
        }
    }
}

/// `confidence`: a number from 0 to 1, or a problem.
pub(crate) fn confidence(obj: &Map<String, Value>, path: &str, problems: &mut Vec<String>) -> Option<f64> {
    match obj.get("confidence") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => Some(c),
            _ => {
                problems.push(format!("{path}confidence: expected a number from 0 to 1, got {n}"));
                None
            }
        },
        Some(v) => {
            problems.push(format!("{path}confidence: expected a number from 0 to 1, got {}", describe(v)));
            None
        }
        None => {
            problems.push(format!("{path}confidence: missing; expected a number from 0 to 1"));
            None
        }
    }
}

/// `field`: a non-empty string (trimmed), or a problem.
pub(crate) fn text(obj: &Map<String, Value>, field: &str, path: &str, problems: &mut Vec<String>) -> Option<String> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(v) => {
            problems.push(format!("{path}{field}: expected a non-empty string, got {}", describe(v)));
            None
        }
        None => {
            problems.push(format!("{path}{field}: missing; expected a non-empty string"));
            None
        }
    }
}

/// The five fields of an answer in `obj` about a candle that closed at `close`, each problem
/// named `{path}{field}` (other keys are the caller's to check).
pub(crate) fn check_answer(
    obj: &Map<String, Value>,
    close: f64,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Answer> {
    let start = problems.len();
    let action = action(obj, path, problems);
    let confidence = confidence(obj, path, problems);
    let reasoning = text(obj, "reasoning", path, problems);
    let stop_loss = price(obj, "stop_loss", path, problems);
    let take_profit = price(obj, "take_profit", path, problems);
    if let (Some(action), Some(sl), Some(tp)) = (action, stop_loss, take_profit) {
        let side = |level: Option<f64>, below: bool, field: &str, problems: &mut Vec<String>| {
            if let Some(v) = level
                && (if below { v >= close } else { v <= close })
            {
                let rel = if below { "below" } else { "above" };
                problems.push(format!(
                    "{path}{field}: expected a price {rel} the close {close} for a {} signal, got {v}",
                    action.as_str()
                ));
            }
        };
        match action {
            Action::Long => {
                side(sl, true, "stop_loss", problems);
                side(tp, false, "take_profit", problems);
            }
            Action::Short => {
                side(sl, false, "stop_loss", problems);
                side(tp, true, "take_profit", problems);
            }
            Action::Hold => {}
        }
    }
    match (action, confidence, reasoning, stop_loss, take_profit) {
        (Some(action), Some(confidence), Some(reasoning), Some(sl), Some(tp)) if problems.len() == start => {
            let hold = action == Action::Hold;
            Some(Answer {
                action,
                confidence,
                reasoning,
                stop_loss: if hold { None } else { sl },
                take_profit: if hold { None } else { tp },
            })
        }
        _ => None,
    }
}

/// `Some(None)` for null, `Some(Some(p))` for a positive price, `None` (with a problem) otherwise.
pub(crate) fn price(
    obj: &Map<String, Value>,
    field: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Option<f64>> {
    match obj.get(field) {
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(p) if p > 0.0 && p.is_finite() => Some(Some(p)),
            _ => {
                problems.push(format!("{path}{field}: expected a positive price or null, got {n}"));
                None
            }
        },
        Some(v) => {
            problems.push(format!("{path}{field}: expected a positive price or null, got {}", describe(v)));
            None
        }
        None => {
            problems.push(format!("{path}{field}: missing; expected a positive price or null"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        r#"{"action": "long", "confidence": 0.7, "reasoning": "trend up", "stop_loss": 95, "take_profit": 110.5}"#;

    #[test]
    fn a_good_answer_plain_or_fenced() {
        let want = Answer {
            action: Action::Long,
            confidence: 0.7,
            reasoning: "trend up".into(),
            stop_loss: Some(95.0),
            take_profit: Some(110.5),
        };
        assert_eq!(parse_answer(GOOD, 100.0).unwrap(), want);
        assert_eq!(parse_answer(&format!("```json\n{GOOD}\n```"), 100.0).unwrap(), want);
        assert_eq!(parse_answer(&format!("  ```\n{GOOD}\n```\n"), 100.0).unwrap(), want);
        let hold = r#"{"action":"hold","confidence":0,"reasoning":"flat","stop_loss":1,"take_profit":null}"#;
        let a = parse_answer(hold, 100.0).unwrap();
        assert_eq!((a.action, a.stop_loss, a.take_profit), (Action::Hold, None, None));
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let cases = [
            ("Sure! Here it is: {}", "not a JSON object"),
            (&format!("Here:\n```json\n{GOOD}\n```"), "not a JSON object"),
            (&format!("```jsonx\n{GOOD}\n```"), "not a JSON object"),
            ("[1]", "expected a JSON object, got [1]"),
            (
                r#"{"action":"long","confidence":1.7,"reasoning":"x","stop_loss":null,"take_profit":null}"#,
                "confidence: expected a number from 0 to 1, got 1.7",
            ),
            (
                r#"{"action":"buy","confidence":0.5,"reasoning":"x","stop_loss":null,"take_profit":null}"#,
                "action: expected \"long\", \"short\" or \"hold\", got \"buy\"",
            ),
            (
                r#"{"action":"long","confidence":"high","reasoning":"","stop_loss":null,"take_profit":null}"#,
                "confidence: expected a number from 0 to 1, got \"high\"; reasoning: expected a non-empty string, got \"\"",
            ),
            (
                r#"{"action":"long","confidence":0.5,"reasoning":"x","stop_loss":null}"#,
                "take_profit: missing; expected a positive price or null",
            ),
            (
                r#"{"action":"long","confidence":0.5,"reasoning":"x","stop_loss":null,"take_profit":null,"size":2}"#,
                "size: unknown field; expected only action, confidence, reasoning, stop_loss, take_profit",
            ),
            (
                r#"{"action":"long","confidence":0.5,"reasoning":"x","stop_loss":101,"take_profit":99}"#,
                "stop_loss: expected a price below the close 100 for a long signal, got 101; take_profit: expected a price above the close 100 for a long signal, got 99",
            ),
            (
                r#"{"action":"short","confidence":0.5,"reasoning":"x","stop_loss":99,"take_profit":null}"#,
                "stop_loss: expected a price above the close 100 for a short signal, got 99",
            ),
            (
                r#"{"action":"short","confidence":0.5,"reasoning":"x","stop_loss":"101","take_profit":-3}"#,
                "stop_loss: expected a positive price or null, got \"101\"; take_profit: expected a positive price or null, got -3",
            ),
        ];
        for (content, expected) in cases {
            let err = parse_answer(content, 100.0).unwrap_err();
            assert!(err.starts_with(expected), "{content}: {err}");
        }
    }
}
