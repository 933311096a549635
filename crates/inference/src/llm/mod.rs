//! LLM analysts as inference models: each candle's [`ModelContext`](crate::stage::ModelContext)
//! goes to every configured analyst, and each answer, or the reason there is none, becomes one
//! signal (`model_kind` `llm`).
//!
//! - [`config`]: the `[[analyst]]` TOML file, keys from environment variables;
//! - [`wire`]: OpenAI-compatible chat completions and Anthropic Messages;
//! - [`prompt`]: the system prompt and the per-candle summary;
//! - [`answer`]: the strict JSON answer, checked field by field;
//! - [`analyst`]: pacing, key rotation, deadline, cache and metrics around the requests;
//! - [`charts`]: several charts in one request, answered per chart and overall;
//! - [`cache`]: the analysts' caches of valid answers;
//! - [`metrics`]: the `tradeflow_llm_*` metrics.

pub mod analyst;
pub mod answer;
mod cache;
pub mod charts;
pub mod config;
pub mod metrics;
pub mod prompt;
pub mod wire;

pub use analyst::{Analyst, not_asked, run_analysts};
pub use answer::{Answer, parse_answer};
pub use charts::{Chart, ChartsAnswer, ChartsError, ChartsReply, Overall};
pub use config::{AnalystConfig, ApiKey, Dialect, LlmConfig, Price};
pub use metrics::{LlmMetrics, RequestOutcome};

/// `s` cut to at most `max` characters, with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
