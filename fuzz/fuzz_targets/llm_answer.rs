//! LLM answers: any bytes of a 2xx response body read by [`wire::parse_response`] in both
//! dialects (OpenAI chat completions, Anthropic Messages), and the content checked as a
//! per-candle answer ([`parse_answer`]) and as a several-charts answer
//! ([`parse_charts_answer`]); the raw bytes are also checked as a content directly (reaching the
//! answer checks without the wire envelope) and read as an error body ([`wire::error_message`]).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_core::market::Interval;
use tradeflow_inference::llm::charts::{Asked, parse_charts_answer};
use tradeflow_inference::llm::{Dialect, parse_answer, wire};

fn check_content(content: &str) {
    for close in [42_000.0, 0.5] {
        let _ = parse_answer(content, close);
    }
    let asked = [
        Asked { symbol: "BTCUSDT".into(), interval: Interval::H1, close: 42_000.0 },
        Asked { symbol: "ETHUSDT".into(), interval: Interval::H4, close: 2_500.0 },
    ];
    let _ = parse_charts_answer(content, &asked, true);
    let _ = parse_charts_answer(content, &asked[..1], false);
}

fuzz_target!(|data: &[u8]| {
    let _ = wire::error_message(data);
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        if let Ok(reply) = wire::parse_response(dialect, data)
            && let Ok(content) = reply.content
        {
            check_content(&content);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_content(text);
    }
});
