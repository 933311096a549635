//! Small pieces every HTTP client here needs the same way: retry backoff, `Retry-After`,
//! error chains and clipped response texts for error messages.

use std::time::Duration;

/// `base` × 2^attempt, at most `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt)).min(max)
}

/// `Retry-After` in whole seconds (what Binance and most APIs send); `None` when absent or in
/// the HTTP-date form.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `e` and its sources, each once, joined with `: ` (reqwest keeps the useful part, e.g.
/// "connection refused", in `source()`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// At most `max` characters of `text` (trimmed), marked with `…` when cut: remote text in our
/// error messages stays readable.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(100), ms(1000), 0), ms(100));
        assert_eq!(backoff(ms(100), ms(1000), 3), ms(800));
        assert_eq!(backoff(ms(100), ms(1000), 4), ms(1000));
        assert_eq!(backoff(ms(100), ms(1000), 99), ms(1000));
    }

    #[test]
    fn clip_marks_a_cut() {
        assert_eq!(clip("  abc ", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
