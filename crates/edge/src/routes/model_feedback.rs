//! `POST /models/{name}/feedback` (trader): a user's rating of one signal of a learned model,
//! `good` or `bad`, with an optional comment. The signal is named by its id or by its candle
//! (symbol, interval, open time) and must be a stored signal of `ml:NAME`. One rating per user
//! and signal: a second replaces the first (200; a new one is 201), so the summary in
//! `GET /models/{name}/performance` counts signals, not clicks. Audited (`model_feedback`),
//! refusals too.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tradeflow_audit::query::model_feedback::{NewModelFeedback, SignalRef};
use tradeflow_core::market::Interval;
use utoipa::ToSchema;

use crate::auth::Trader;
use crate::error::{ApiError, Json, Path};
use crate::state::{AppState, RequestMeta};

/// Longest comment kept, in characters.
pub const MAX_COMMENT: usize = 1000;
const MAX_SIGNAL_ID: usize = 300;
const FIELDS: [&str; 6] = ["signal_id", "symbol", "interval", "open_time", "rating", "comment"];

/// good or bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Good,
    Bad,
}

impl Rating {
    fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Bad => "bad",
        }
    }
}

/// A rating of one signal: `signal_id`, or the signal's candle (`symbol`, `interval`,
/// `open_time`), not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFeedbackRequest {
    /// The signal's id (`<source>:<symbol>:<interval>:<open_time>/ml:NAME`).
    #[schema(min_length = 1, max_length = 300)]
    pub signal_id: Option<String>,
    /// The signal's symbol (with `interval` and `open_time`, instead of `signal_id`).
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9._/:-]+$")]
    pub symbol: Option<String>,
    #[schema(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
    /// The signal's candle's open time, epoch ms.
    #[schema(minimum = 0)]
    pub open_time: Option<i64>,
    pub rating: Rating,
    /// At most 1000 characters.
    #[schema(max_length = 1000)]
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelFeedbackAck {
    pub name: String,
    pub signal_id: String,
    /// The version that emitted the signal (0: not known).
    pub version: i64,
    /// The signal's action.
    pub action: String,
    pub rating: Rating,
    pub comment: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    /// Whether it replaced the caller's earlier rating of the signal.
    pub replaced: bool,
}

/// Where the rated signal is.
#[derive(Debug, PartialEq)]
enum Target {
    Id(String),
    Candle { symbol: String, interval: Interval, open_time: i64 },
}

/// Problems of a request, each with the field it names.
type Problems = Vec<(&'static str, String)>;
/// A checked request: the signal, the rating, the comment.
type Parsed = (Target, Rating, Option<String>);

/// The request checked field by field: every problem, each naming its field.
fn parse(body: &Value) -> Result<Parsed, Problems> {
    let Some(obj) = body.as_object() else { return Err(vec![("body", "expected a JSON object".into())]) };
    let mut problems: Problems = Vec::new();
    for key in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        problems.push(("body", format!("unknown field {key:?}; expected {}", FIELDS.join(", "))));
    }
    let text = |field: &'static str, problems: &mut Problems| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                problems.push((field, format!("{field}: expected a string, got {other}")));
                None
            }
        }
    };
    let rating = match obj.get("rating") {
        None | Some(Value::Null) => {
            problems.push(("rating", "rating: required, \"good\" or \"bad\"".into()));
            None
        }
        Some(v) => match serde_json::from_value::<Rating>(v.clone()) {
            Ok(r) => Some(r),
            Err(_) => {
                problems.push(("rating", format!("rating: expected \"good\" or \"bad\", got {v}")));
                None
            }
        },
    };
    let comment = text("comment", &mut problems);
    if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        problems.push(("comment", format!("comment: at most {MAX_COMMENT} characters")));
    }
    let signal_id = text("signal_id", &mut problems);
    if signal_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_SIGNAL_ID) {
        problems.push(("signal_id", format!("signal_id: 1 to {MAX_SIGNAL_ID} characters")));
    }
    let symbol = text("symbol", &mut problems);
    if let Some(p) = symbol.as_deref().and_then(super::market::symbol_problem) {
        problems.push(("symbol", p));
    }
    let interval = text("interval", &mut problems).and_then(|i| match i.parse::<Interval>() {
        Ok(i) => Some(i),
        Err(e) => {
            problems.push(("interval", format!("interval: {e}")));
            None
        }
    });
    let open_time = match obj.get("open_time") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(t) if t >= 0 => Some(t),
            _ => {
                problems.push(("open_time", format!("open_time: expected epoch milliseconds, 0 or more, got {v}")));
                None
            }
        },
    };
    let candle = ["symbol", "interval", "open_time"].into_iter().filter(|f| obj.get(*f).is_some_and(|v| !v.is_null()));
    let candle: Vec<&str> = candle.collect();
    let has_id = obj.get("signal_id").is_some_and(|v| !v.is_null());
    if has_id && !candle.is_empty() {
        problems.push(("signal_id", format!("signal_id or the candle ({}), not both", candle.join(", "))));
    } else if !has_id && candle.len() < 3 {
        let missing: Vec<&str> =
            ["symbol", "interval", "open_time"].into_iter().filter(|f| !candle.contains(f)).collect();
        problems.push((
            "signal_id",
            format!("signal_id, or symbol, interval and open_time: {} missing", missing.join(", ")),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let target = match (signal_id, symbol, interval, open_time) {
        (Some(id), ..) => Target::Id(id),
        (None, Some(symbol), Some(interval), Some(open_time)) => Target::Candle { symbol, interval, open_time },
        _ => return Err(vec![("signal_id", "signal_id, or symbol, interval and open_time".into())]),
    };
    match rating {
        Some(r) => Ok((target, r, comment)),
        None => Err(vec![("rating", "rating: required".into())]),
    }
}

fn invalid(problems: Problems) -> ApiError {
    let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
    let messages: Vec<String> = problems.iter().map(|(_, m)| m.clone()).collect();
    ApiError::unprocessable("invalid_body", messages.join("; "))
        .with_details(json!({ "fields": fields, "problems": messages }))
}

/// The version a learned model's signal carries in its scores (0: none).
fn version_of(signal: &SignalRef) -> i64 {
    serde_json::from_str::<Map<String, Value>>(&signal.scores)
        .ok()
        .and_then(|m| m.get("version").and_then(Value::as_f64))
        .map_or(0, |v| v as i64)
}

/// Rates one signal of a learned model good or bad (trader); a second rating of the same
/// signal by the same user replaces the first.
#[utoipa::path(post, path = "/models/{name}/feedback", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name (without ml:)")),
    request_body = ModelFeedbackRequest,
    responses(
        (status = 201, body = ModelFeedbackAck, description = "stored"),
        (status = 200, body = ModelFeedbackAck, description = "replaced the caller's earlier rating of the signal"),
        (status = 400, body = crate::error::ErrorBody, description = "the body is not JSON"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "no such model, or no such signal of it"),
        (status = 409, body = crate::error::ErrorBody, description = "the candle has signals from several sources; name one by signal_id"),
        (status = 422, body = crate::error::ErrorBody, description = "invalid fields, each named"),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn feedback(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<ModelFeedbackAck>), ApiError> {
    let caller = meta.caller(who);
    let outcome = async {
        let (target, rating, comment) = parse(&body).map_err(invalid)?;
        let store = state.store()?;
        if store.model_versions(Some(&name)).await?.is_empty() {
            return Err(ApiError::not_found("model", &name));
        }
        let model = format!("{}{name}", tradeflow_inference::ml::PREFIX);
        let signal = match &target {
            Target::Id(id) => store.model_signal(&model, id).await?.ok_or_else(|| ApiError::not_found(&format!("signal of {model}"), id))?,
            Target::Candle { symbol, interval, open_time } => {
                let mut found = store.model_signals_at(&model, symbol, interval.as_str(), *open_time).await?;
                if found.len() > 1 {
                    let ids: Vec<String> = found.into_iter().map(|s| s.id).collect();
                    return Err(ApiError::conflict(format!(
                        "{model} has {} signals for {symbol} {interval} at {open_time} (one per source); name one by signal_id",
                        ids.len()
                    ))
                    .with_details(json!({ "signal_ids": ids })));
                }
                found.pop().ok_or_else(|| {
                    ApiError::not_found(&format!("signal of {model}"), &format!("{symbol} {interval} {open_time}"))
                })?
            }
        };
        let created_at = tradeflow_core::time::now_ms();
        let version = version_of(&signal);
        let replaced = store
            .upsert_model_feedback(&NewModelFeedback {
                name: &name,
                version,
                signal: &signal,
                rating: rating.as_str(),
                comment: comment.as_deref(),
                created_by: &caller.identity.subject,
                created_at,
            })
            .await?;
        let details = json!({ "name": name, "signal_id": signal.id, "version": version, "rating": rating.as_str(), "replaced": replaced });
        let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
        let ack = ModelFeedbackAck {
            name: name.clone(),
            signal_id: signal.id,
            version,
            action: signal.action,
            rating,
            comment,
            created_by: caller.identity.subject.clone(),
            created_at,
            replaced,
        };
        Ok(((status, Json(ack)), details))
    }
    .await;
    state.audited(&caller, "model_feedback", &format!("model_feedback/{name}"), outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: Value) -> Vec<&'static str> {
        parse(&body).unwrap_err().into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_signal_by_id_or_by_candle_and_every_bad_field_named() {
        let (t, r, c) = parse(&json!({"signal_id": "csv:X:1h:0/ml:a", "rating": "good"})).unwrap();
        assert_eq!((t, r, c), (Target::Id("csv:X:1h:0/ml:a".into()), Rating::Good, None));
        let (t, r, _) = parse(&json!({"symbol": "BTCUSD", "interval": "1h", "open_time": 7, "rating": "bad"})).unwrap();
        assert_eq!(
            (t, r),
            (Target::Candle { symbol: "BTCUSD".into(), interval: Interval::H1, open_time: 7 }, Rating::Bad)
        );
        assert_eq!(
            fields(json!({"signal_id": "", "rating": "meh", "comment": 3, "extra": 1})),
            ["body", "rating", "comment", "signal_id"]
        );
        assert_eq!(fields(json!({"rating": "good"})), ["signal_id"]);
        assert_eq!(fields(json!({"signal_id": "a", "symbol": "X", "rating": "good"})), ["signal_id"]);
        assert_eq!(
            fields(json!({"symbol": "no spaces", "interval": "7h", "open_time": -1, "rating": "good"})),
            ["symbol", "interval", "open_time"]
        );
        let long = "x".repeat(MAX_COMMENT + 1);
        assert_eq!(fields(json!({"signal_id": "a", "rating": "good", "comment": long})), ["comment"]);
        assert_eq!(fields(json!([1])), ["body"]);
        let e = parse(&json!({"symbol": "X", "rating": "good"})).unwrap_err();
        assert!(e[0].1.contains("interval, open_time missing"), "{e:?}");
    }
}
