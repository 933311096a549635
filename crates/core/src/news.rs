//! News: the `NewsItem` message of `md.news`. A story is known by two keys, its canonical link
//! (made by the news source) and its [`normalised_title`]: a story seen again under either key
//! is the same story (a feed re-polled, the same article in two feeds, a link with tracking
//! parameters).

use serde::{Deserialize, Serialize};

use crate::payload::Payload;

/// The partition key and the `symbol` of a story tagged with no symbol.
pub const MARKET: &str = "market";

/// Longest title kept, in characters (the rest is cut with `…`): a title is a headline, and
/// its normalised form is a unique key in SQL, where index entries have a size limit.
pub const MAX_TITLE_CHARS: usize = 300;
/// Longest summary kept, in characters.
pub const MAX_SUMMARY_CHARS: usize = 600;

/// One story on `md.news` (key: its first symbol, or [`MARKET`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsItem {
    /// `news:<32 hex digits>`: a hash of the canonical link (of the normalised title when the
    /// story has no link), so that a re-poll or a restart gives the same id.
    pub id: String,
    /// The feed it came from, as configured (`coindesk`, `cryptopanic`, ...).
    pub source: String,
    pub title: String,
    /// The canonical link (no tracking parameters, no fragment, `https`); empty when the story
    /// had none.
    pub link: String,
    /// The feed's summary as plain text, clipped; may be empty.
    pub summary: String,
    /// When it was published (epoch ms); never later than when it was first fetched.
    pub published_at: i64,
    /// When the source first fetched it (epoch ms).
    pub fetched_at: i64,
    /// The configured symbols the story is about; empty: about the market as a whole.
    pub symbols: Vec<String>,
}

impl NewsItem {
    /// The partition key: the first symbol, or [`MARKET`].
    pub fn key(&self) -> &str {
        self.symbols.first().map_or(MARKET, String::as_str)
    }

    /// [`normalised_title`] of the title: the second key a story is deduplicated by.
    pub fn title_key(&self) -> String {
        normalised_title(&self.title)
    }
}

impl Payload for NewsItem {
    const KIND: &'static str = "news";
    const VERSION: u16 = 1;
}

/// A title as a dedup key: lower case, letters and digits only, words separated by one space
/// ("Bitcoin tops $100k!" and "BITCOIN TOPS $100K" are one story).
pub fn normalised_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for word in title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// `s` with its whitespace runs made single spaces, cut to `max` characters (with `…`).
pub fn clip_text(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_differing_only_in_case_and_punctuation_are_one_title() {
        assert_eq!(normalised_title("Bitcoin tops $100k!"), "bitcoin tops 100k");
        assert_eq!(normalised_title("  BITCOIN — TOPS   $100K "), "bitcoin tops 100k");
        assert_eq!(normalised_title("Ethereum’s Pectra upgrade"), "ethereum s pectra upgrade");
        assert_eq!(normalised_title("!!!"), "");
    }

    #[test]
    fn a_story_without_symbols_is_keyed_market() {
        let mut n = NewsItem {
            id: "news:1".into(),
            source: "feed".into(),
            title: "A".into(),
            link: String::new(),
            summary: String::new(),
            published_at: 0,
            fetched_at: 0,
            symbols: vec![],
        };
        assert_eq!(n.key(), MARKET);
        n.symbols = vec!["ETHUSDT".into(), "BTCUSDT".into()];
        assert_eq!(n.key(), "ETHUSDT");
        assert_eq!(clip_text(" a \n b  c ", 3), "a b…");
        assert_eq!(clip_text("abc", 3), "abc");
    }
}
