//! Recent headlines for the LLM analysts: the stories of `md.news` kept per symbol (and for
//! the `market`), read by a tap from the stream's first entry so that a worker starting late
//! knows the recent news at once.
//!
//! An analyst with `headlines > 0` is given, in its prompt, up to that many headlines about
//! the candle's symbol or the market as a whole, published within `headline_max_age_s` before
//! the moment it is asked about (newest first). Backtests and replays have no news: their
//! analysts' prompts carry no headlines.

use std::collections::{HashMap, VecDeque};
use std::sync::{RwLock, Weak};
use std::time::Duration;

use tracing::warn;
use tradeflow_bus::tap::{From, Tap};
use tradeflow_bus::{Bus, BusError};
use tradeflow_core::news::{MARKET, NewsItem};

/// The stream followed.
pub const STREAM: &str = "md.news";
/// Headlines kept per symbol (an analyst is given at most [`MAX_HEADLINES`]).
const KEEP: usize = 200;
/// Most headlines an analyst may ask for.
pub const MAX_HEADLINES: usize = 50;

/// One headline as the prompt shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headline {
    pub title: String,
    pub source: String,
    /// Epoch ms.
    pub published_at: i64,
}

/// The recent headlines by symbol (and [`MARKET`]); shared by every partition of a process.
#[derive(Debug, Default)]
pub struct Headlines {
    by_key: RwLock<HashMap<String, VecDeque<Headline>>>,
}

impl Headlines {
    pub fn new() -> Self {
        Self::default()
    }

    /// Files `item` under each of its symbols (under [`MARKET`] when it has none).
    pub fn add(&self, item: &NewsItem) {
        let h = Headline { title: item.title.clone(), source: item.source.clone(), published_at: item.published_at };
        let keys: Vec<&str> =
            if item.symbols.is_empty() { vec![MARKET] } else { item.symbols.iter().map(String::as_str).collect() };
        let mut map = self.by_key.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys {
            let list = map.entry(k.to_string()).or_default();
            // Newest first; stories mostly arrive in order, so this is near the front.
            let at = list.iter().position(|x| x.published_at < h.published_at).unwrap_or(list.len());
            list.insert(at, h.clone());
            list.truncate(KEEP);
        }
    }

    /// Up to `count` headlines about `symbol` or the market, published in
    /// `(at - max_age_ms, at]`, newest first, each title once.
    pub fn recent(&self, symbol: &str, at: i64, count: usize, max_age_ms: i64) -> Vec<Headline> {
        if count == 0 {
            return Vec::new();
        }
        let map = self.by_key.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<&Headline> = [symbol, MARKET]
            .iter()
            .filter_map(|k| map.get(*k))
            .flatten()
            .filter(|h| h.published_at <= at && h.published_at > at.saturating_sub(max_age_ms))
            .collect();
        all.sort_by(|a, b| b.published_at.cmp(&a.published_at).then_with(|| a.title.cmp(&b.title)));
        let mut out: Vec<Headline> = Vec::with_capacity(count);
        for h in all {
            if out.len() == count {
                break;
            }
            if !out.iter().any(|o| o.title == h.title) {
                out.push(h.clone());
            }
        }
        out
    }
}

/// Reads `md.news` from its first entry into `book` until `book` is dropped. Read errors are
/// retried every second; without the stream in the topology there is nothing to follow.
pub async fn follow(bus: Bus, book: Weak<Headlines>) {
    let block = Duration::from_millis(500);
    let mut tap = loop {
        match Tap::open(&bus, &[STREAM], From::Start, block).await {
            Ok(t) => break t,
            Err(BusError::UnknownStream { .. }) => {
                warn!("no {STREAM} stream in the topology: analysts get no headlines");
                return;
            }
            Err(e) => {
                warn!(error = %e, "headline follower cannot start; retrying");
                if book.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        let batch = tap.next().await;
        let Some(book) = book.upgrade() else { return };
        match batch {
            Ok(batch) => {
                for t in batch {
                    match t.envelope.open::<NewsItem>() {
                        Ok(item) => book.add(&item),
                        Err(e) => warn!(entry = %t.entry_id, error = %e, "unreadable story skipped"),
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "headline follower read failed; reconnecting");
                drop(book);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, symbols: &[&str], at: i64) -> NewsItem {
        NewsItem {
            id: format!("news:{title}"),
            source: "wire".into(),
            title: title.into(),
            link: String::new(),
            summary: String::new(),
            published_at: at,
            fetched_at: at,
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_symbol_gets_its_own_and_the_markets_recent_headlines() {
        let book = Headlines::new();
        book.add(&item("BTC old", &["BTCUSD"], 1_000));
        book.add(&item("BTC new", &["BTCUSD", "ETHUSD"], 5_000));
        book.add(&item("Fed", &[], 4_000));
        book.add(&item("ETH only", &["ETHUSD"], 4_500));
        book.add(&item("After the candle", &["BTCUSD"], 9_000));
        let titles = |v: Vec<Headline>| v.into_iter().map(|h| h.title).collect::<Vec<_>>();
        assert_eq!(titles(book.recent("BTCUSD", 6_000, 10, 10_000)), ["BTC new", "Fed", "BTC old"]);
        assert_eq!(titles(book.recent("BTCUSD", 6_000, 2, 10_000)), ["BTC new", "Fed"]);
        assert_eq!(titles(book.recent("BTCUSD", 6_000, 10, 3_000)), ["BTC new", "Fed"]);
        assert_eq!(titles(book.recent("ETHUSD", 6_000, 10, 10_000)), ["BTC new", "ETH only", "Fed"]);
        assert_eq!(titles(book.recent("SOLUSD", 6_000, 10, 10_000)), ["Fed"]);
        assert!(book.recent("BTCUSD", 6_000, 0, 10_000).is_empty());
    }
}
