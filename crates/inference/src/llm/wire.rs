//! The two wire formats: OpenAI-compatible chat completions and Anthropic Messages.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::config::{AnalystConfig, ApiKey, Dialect};

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Token counts of one answered request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The endpoint of `dialect` under `base_url` (no trailing slash).
pub fn endpoint(dialect: Dialect, base_url: &str) -> String {
    match dialect {
        Dialect::OpenAi => format!("{base_url}/chat/completions"),
        Dialect::Anthropic => format!("{base_url}/v1/messages"),
    }
}

/// The request body.
pub fn request_body(dialect: Dialect, config: &AnalystConfig, system: &str, user: &str) -> Value {
    let mut body = match dialect {
        Dialect::OpenAi => json!({
            "model": config.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_tokens": config.max_tokens,
        }),
        Dialect::Anthropic => json!({
            "model": config.model,
            "max_tokens": config.max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": user}],
        }),
    };
    if let Some(obj) = body.as_object_mut() {
        if let Some(t) = config.temperature {
            obj.insert("temperature".into(), json!(t));
        }
        if config.json_mode && dialect == Dialect::OpenAi {
            obj.insert("response_format".into(), json!({"type": "json_object"}));
        }
    }
    body
}

/// The authentication headers (marked sensitive, so they never show in debug output), and
/// Anthropic's version header.
pub fn headers(dialect: Dialect, key: Option<&ApiKey>) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let secret = |prefix: &str, key: &ApiKey| {
        let mut v = HeaderValue::from_str(&format!("{prefix}{}", key.secret()))
            .map_err(|_| format!("the key in {} is not a valid HTTP header value", key.env()))?;
        v.set_sensitive(true);
        Ok::<_, String>(v)
    };
    match dialect {
        Dialect::OpenAi => {
            if let Some(k) = key {
                h.insert(reqwest::header::AUTHORIZATION, secret("Bearer ", k)?);
            }
        }
        Dialect::Anthropic => {
            if let Some(k) = key {
                h.insert(HeaderName::from_static("x-api-key"), secret("", k)?);
            }
            h.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        }
    }
    Ok(h)
}

/// A 2xx response body: the answer text (or what is missing) and the tokens it consumed,
/// which are counted either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub content: Result<String, String>,
    pub usage: Option<Usage>,
}

/// Reads a 2xx response body; `Err` when it is not JSON at all.
pub fn parse_response(dialect: Dialect, body: &[u8]) -> Result<Reply, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the response is not JSON: {e}"))?;
    let count = |path: &str| v.pointer(path).and_then(Value::as_u64);
    let (input, output) = match dialect {
        Dialect::OpenAi => ("/usage/prompt_tokens", "/usage/completion_tokens"),
        Dialect::Anthropic => ("/usage/input_tokens", "/usage/output_tokens"),
    };
    let usage = match (count(input), count(output)) {
        (None, None) => None,
        (i, o) => Some(Usage { input_tokens: i.unwrap_or(0), output_tokens: o.unwrap_or(0) }),
    };
    let content = match dialect {
        Dialect::OpenAi => match v.pointer("/choices/0/message/content") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err("choices[0].message.content: expected a string".to_string()),
        },
        // content[0] normally; the first text block when the model put others first.
        Dialect::Anthropic => v
            .get("content")
            .and_then(Value::as_array)
            .and_then(|blocks| blocks.iter().find(|b| b.get("type").and_then(Value::as_str) == Some("text")))
            .and_then(|b| b.get("text"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "content[0].text: expected a text block".to_string()),
    };
    Ok(Reply { content, usage })
}

/// The provider's error message in a non-2xx body (`{"error": {"message": ...}}` in both
/// dialects), or the body itself.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match v.pointer("/error/message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => text.trim().to_string(),
        },
        Err(_) => text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_response_formats() {
        let openai = br#"{"choices":[{"message":{"role":"assistant","content":"{}"}}],"usage":{"prompt_tokens":10,"completion_tokens":3}}"#;
        assert_eq!(
            parse_response(Dialect::OpenAi, openai).unwrap(),
            Reply { content: Ok("{}".into()), usage: Some(Usage { input_tokens: 10, output_tokens: 3 }) }
        );
        let anthropic = br#"{"content":[{"type":"text","text":"{}"}],"usage":{"input_tokens":7,"output_tokens":2}}"#;
        assert_eq!(
            parse_response(Dialect::Anthropic, anthropic).unwrap(),
            Reply { content: Ok("{}".into()), usage: Some(Usage { input_tokens: 7, output_tokens: 2 }) }
        );
        let refusal =
            br#"{"choices":[{"message":{"content":null}}],"usage":{"prompt_tokens":10,"completion_tokens":0}}"#;
        assert_eq!(
            parse_response(Dialect::OpenAi, refusal).unwrap(),
            Reply {
                content: Err("choices[0].message.content: expected a string".into()),
                usage: Some(Usage { input_tokens: 10, output_tokens: 0 })
            }
        );
        assert!(parse_response(Dialect::Anthropic, b"<html>").unwrap_err().starts_with("the response is not JSON"));
        assert_eq!(error_message(br#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#), "overloaded");
        assert_eq!(error_message(b" bad gateway \n"), "bad gateway");
    }

    #[test]
    fn keys_go_in_sensitive_headers() {
        let key = ApiKey::new("K", "sk-secret");
        let h = headers(Dialect::OpenAi, Some(&key)).unwrap();
        assert!(h["authorization"].is_sensitive());
        assert!(!format!("{h:?}").contains("sk-secret"));
        let h = headers(Dialect::Anthropic, Some(&key)).unwrap();
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h["anthropic-version"], ANTHROPIC_VERSION);
        assert!(!format!("{h:?}").contains("sk-secret"));
    }
}
