//! Crypto news: RSS/Atom feeds and CryptoPanic polled every `poll_every`, each story tagged
//! with the configured symbols it names and published once on `md.news`.
//!
//! - [`feed`]: RSS/Atom/JSON feeds (`feed-rs`); [`cryptopanic`]: the posts API, key from the
//!   environment;
//! - [`link`]: canonical links and story ids; [`tags`]: symbols by name and alias;
//!   [`text`]: HTML summaries as plain text;
//! - [`run_news`]: the polling loop.
//!
//! **Once per story.** A story is known by its id (from the canonical link) and by its
//! normalised title. At start the source reads `md.news` from its first entry (the stream is
//! not trimmed once audited, see streams.toml) and remembers both keys of every story it holds;
//! a polled story with either key already seen is a duplicate and is not sent. So a re-poll,
//! a restart, the same article in two feeds or under another tracking parameter gives one
//! message. The audit table repeats the check with unique keys, for stories older than the
//! stream's `maxlen`.
//!
//! A story is keyed by its first symbol (`market` when it names none); its `published_at` is
//! never later than its fetch time, and stories published more than `max_age` ago are not
//! sent (a feed's first poll can hold months of archive).

pub mod cryptopanic;
pub mod feed;
pub mod link;
pub mod tags;
pub mod text;

use std::collections::HashSet;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_bus::tap::{From, Tap};
use tradeflow_bus::{BusError, Producer};
use tradeflow_core::MessageId;
use tradeflow_core::news::{MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, NewsItem, clip_text, normalised_title};
use tradeflow_net::http::error_chain;
use tradeflow_net::tls;

pub use cryptopanic::{AuthToken, CryptoPanicConfig};
pub use tags::SymbolTags;

/// The stream stories go to.
pub const STREAM: &str = "md.news";
/// The source name of CryptoPanic's stories.
pub const CRYPTOPANIC: &str = "cryptopanic";

/// A story as a source read it, before tagging and deduplication.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    pub title: String,
    /// As given (made canonical later); may be empty.
    pub link: String,
    pub summary: String,
    /// Epoch ms; `None` when the source gave no (readable) date.
    pub published_at: Option<i64>,
    /// The provider's currency codes (CryptoPanic), upper case; empty for feeds.
    pub codes: Vec<String>,
}

/// One RSS/Atom feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSource {
    /// The `source` of its stories (`coindesk`).
    pub name: String,
    pub url: String,
}

impl FeedSource {
    /// `[NAME=]URL`; the name defaults to the URL's host without `www.`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, url) = match spec.split_once('=') {
            // `=` also appears in query strings: a name is what comes before `=` only when it
            // has no `/` or `:` (it is not the start of a URL).
            Some((n, u)) if !n.contains(['/', ':']) => (Some(n.trim().to_string()), u.trim().to_string()),
            _ => (None, spec.trim().to_string()),
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{spec:?}: {url:?} is not a URL: {e}"))?;
        let host = match (parsed.scheme(), parsed.host_str()) {
            ("http" | "https", Some(h)) => h.to_ascii_lowercase(),
            _ => return Err(format!("{spec:?}: {url:?} is not an http:// or https:// URL with a host")),
        };
        let name = name.unwrap_or_else(|| host.trim_start_matches("www.").to_string());
        Ok(Self { name, url })
    }
}

#[derive(Debug, Clone)]
pub struct NewsConfig {
    pub feeds: Vec<FeedSource>,
    pub cryptopanic: Option<CryptoPanicConfig>,
    /// The symbols stories are tagged with.
    pub symbols: Vec<SymbolTags>,
    /// Time between two polls of every source (default 5 min).
    pub poll_every: Duration,
    /// Time limit of one request (default 10 s).
    pub request_timeout: Duration,
    /// Stories published longer ago are not sent (default 7 days).
    pub max_age: Duration,
    /// Largest response read (default 5 MiB).
    pub max_body_bytes: usize,
}

impl NewsConfig {
    pub fn new(feeds: Vec<FeedSource>, symbols: Vec<SymbolTags>) -> Self {
        Self {
            feeds,
            cryptopanic: None,
            symbols,
            poll_every: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(7 * 86_400),
            max_body_bytes: 5 << 20,
        }
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), NewsError> {
        let mut problems = Vec::new();
        if self.feeds.is_empty() && self.cryptopanic.is_none() {
            problems.push("no source: give at least one feed or CryptoPanic".to_string());
        }
        for (i, f) in self.feeds.iter().enumerate() {
            if f.name.is_empty()
                || f.name.len() > 64
                || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                problems
                    .push(format!("feeds[{i}].name: {:?} must be 1 to 64 letters, digits, '-', '_' or '.'", f.name));
            } else if self.feeds[..i].iter().any(|g| g.name == f.name) || f.name == CRYPTOPANIC {
                problems.push(format!("feeds[{i}].name: {:?} is used by another source", f.name));
            }
            if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                problems.push(format!("feeds[{i}].url: {:?} must start with http:// or https://", f.url));
            }
        }
        if let Some(c) = &self.cryptopanic
            && !(c.base_url.starts_with("http://") || c.base_url.starts_with("https://"))
        {
            problems.push(format!("cryptopanic.base_url: {:?} must start with http:// or https://", c.base_url));
        }
        for (i, s) in self.symbols.iter().enumerate() {
            if self.symbols[..i].iter().any(|t| t.symbol == s.symbol) {
                problems.push(format!("symbols[{i}]: {} is listed twice", s.symbol));
            }
        }
        if self.poll_every < Duration::from_secs(1) {
            problems.push(format!("poll_every: must be at least 1 s, got {:?}", self.poll_every));
        }
        if self.request_timeout.is_zero() {
            problems.push("request_timeout: must be positive".into());
        }
        if self.max_age.is_zero() {
            problems.push("max_age: must be positive".into());
        }
        if self.max_body_bytes == 0 {
            problems.push("max_body_bytes: must be positive".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(NewsError::Config(problems)) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NewsError {
    #[error("news configuration has {} problem(s): {}", .0.len(), .0.join("; "))]
    Config(Vec<String>),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("reading the stories already sent ({STREAM}): {0}")]
    History(BusError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// `tradeflow_news_*` metrics.
#[derive(Clone)]
pub struct NewsMetrics {
    /// Stories read, by source and outcome: `published`, `duplicate`, `too_old`, `invalid`.
    pub stories: IntCounterVec,
    /// Polls of a source that gave no stories (HTTP error, timeout, unreadable document).
    pub fetch_errors: IntCounterVec,
}

impl NewsMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let stories = IntCounterVec::new(
            Opts::new("tradeflow_news_stories_total", "News stories read, by source and outcome."),
            &["source", "outcome"],
        )?;
        let fetch_errors = IntCounterVec::new(
            Opts::new("tradeflow_news_fetch_errors_total", "Polls of a news source that failed, by source."),
            &["source"],
        )?;
        registry.register(Box::new(stories.clone()))?;
        registry.register(Box::new(fetch_errors.clone()))?;
        Ok(Self { stories, fetch_errors })
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewsReport {
    pub polls: u64,
    /// Stories read from the sources.
    pub read: u64,
    pub published: u64,
    /// Stories already sent (same id or same normalised title).
    pub duplicates: u64,
    pub too_old: u64,
    /// Sources that could not be read in a poll.
    pub failed_fetches: u64,
}

/// The ids and normalised titles of the stories sent.
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashSet<String>,
    titles: HashSet<String>,
}

impl Seen {
    pub fn contains(&self, item: &NewsItem) -> bool {
        self.ids.contains(&item.id) || self.titles.contains(&item.title_key())
    }

    pub fn insert(&mut self, item: &NewsItem) {
        self.ids.insert(item.id.clone());
        self.titles.insert(item.title_key());
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Every story `md.news` holds, read from its first entry.
pub async fn load_sent(bus: &tradeflow_bus::Bus) -> Result<Seen, BusError> {
    let mut tap = Tap::open(bus, &[STREAM], From::Start, Duration::from_millis(50)).await?;
    let mut seen = Seen::default();
    loop {
        let batch = tap.next().await?;
        if batch.is_empty() {
            break;
        }
        for t in batch {
            match t.envelope.open::<NewsItem>() {
                Ok(item) => seen.insert(&item),
                Err(e) => warn!(entry = %t.entry_id, error = %e, "unreadable story on {STREAM} skipped"),
            }
        }
    }
    Ok(seen)
}

/// `story` of `source` as the message for `md.news`, fetched at `now`; `None` when it has no
/// title left once normalised.
pub fn to_item(source: &str, story: &Story, symbols: &[SymbolTags], now: i64) -> Option<NewsItem> {
    let title = clip_text(&story.title, MAX_TITLE_CHARS);
    if normalised_title(&title).is_empty() {
        return None;
    }
    let summary = clip_text(&story.summary, MAX_SUMMARY_CHARS);
    let link = link::canonical_link(&story.link).unwrap_or_default();
    Some(NewsItem {
        id: link::story_id(&link, &title),
        source: source.to_string(),
        symbols: tags::symbols_of(symbols, &title, &summary, &story.codes),
        title,
        link,
        summary,
        published_at: story.published_at.map_or(now, |p| p.min(now)),
        fetched_at: now,
    })
}

fn http_client(config: &NewsConfig) -> Result<reqwest::Client, NewsError> {
    let tls = tls::client_config().map_err(NewsError::Tls)?;
    reqwest::Client::builder()
        // reqwest downcasts the `rustls::ClientConfig` itself, not an `Arc` of it.
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NewsError::Client(error_chain(&e)))
}

/// The body of a GET of `url`, at most `max` bytes. Errors never contain the URL (a
/// CryptoPanic URL carries the key).
async fn fetch(http: &reqwest::Client, url: reqwest::Url, accept: &str, max: usize) -> Result<Vec<u8>, String> {
    let mut resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, accept)
        .send()
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        resp.chunk().await.map_err(|e| format!("reading the body: {}", error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the body is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

const FEED_ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5";

/// The stories of every source, by source name; a source that fails is logged, counted and
/// left out of this poll.
async fn poll_sources(
    http: &reqwest::Client,
    config: &NewsConfig,
    metrics: &NewsMetrics,
    report: &mut NewsReport,
) -> Vec<(String, Vec<Story>)> {
    let mut out = Vec::new();
    for f in &config.feeds {
        let read = match reqwest::Url::parse(&f.url) {
            Ok(url) => fetch(http, url, FEED_ACCEPT, config.max_body_bytes)
                .await
                .and_then(|body| feed::parse_feed(&body, &f.url)),
            Err(e) => Err(format!("not a URL: {e}")),
        };
        match read {
            Ok(stories) => out.push((f.name.clone(), stories)),
            Err(e) => {
                warn!(source = %f.name, url = %f.url, error = %e, "news feed not read");
                metrics.fetch_errors.with_label_values(&[f.name.as_str()]).inc();
                report.failed_fetches += 1;
            }
        }
    }
    if let Some(c) = &config.cryptopanic {
        let read = match cryptopanic::posts_url(c) {
            Ok(url) => fetch(http, url, "application/json", config.max_body_bytes)
                .await
                .and_then(|body| cryptopanic::parse_posts(&body)),
            Err(e) => Err(e),
        };
        match read {
            Ok(stories) => out.push((CRYPTOPANIC.to_string(), stories)),
            Err(e) => {
                warn!(source = CRYPTOPANIC, key_env = %c.key_env, error = %e, "CryptoPanic not read");
                metrics.fetch_errors.with_label_values(&[CRYPTOPANIC]).inc();
                report.failed_fetches += 1;
            }
        }
    }
    out
}

/// One poll: every source read, new stories sent (oldest first) and remembered.
pub async fn poll_once(
    producer: &Producer,
    http: &reqwest::Client,
    config: &NewsConfig,
    seen: &mut Seen,
    metrics: &NewsMetrics,
    report: &mut NewsReport,
) -> Result<(), BusError> {
    let now = tradeflow_core::time::now_ms();
    let oldest = now.saturating_sub(i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX));
    let mut fresh: Vec<NewsItem> = Vec::new();
    let mut this_poll = Seen::default();
    let mut counts: Vec<(String, &'static str)> = Vec::new();
    for (source, stories) in poll_sources(http, config, metrics, report).await {
        for story in &stories {
            report.read += 1;
            let outcome = match to_item(&source, story, &config.symbols, now) {
                None => "invalid",
                Some(item) if item.published_at < oldest => {
                    report.too_old += 1;
                    "too_old"
                }
                Some(item) if seen.contains(&item) || this_poll.contains(&item) => {
                    report.duplicates += 1;
                    "duplicate"
                }
                Some(item) => {
                    this_poll.insert(&item);
                    fresh.push(item);
                    "published"
                }
            };
            counts.push((source.clone(), outcome));
        }
    }
    report.polls += 1;
    fresh.sort_by(|a, b| a.published_at.cmp(&b.published_at).then_with(|| a.id.cmp(&b.id)));
    let mut batch = Vec::with_capacity(fresh.len());
    for item in &fresh {
        let id = MessageId::new(item.id.clone()).map_err(|e| BusError::Reply { op: "XADD", reason: e.to_string() })?;
        batch.push(producer.prepare(STREAM, &id, item.key(), None, item)?);
    }
    if !batch.is_empty() {
        producer.send(&batch).await?;
    }
    // Remembered once sent: a failed send leaves them to the next poll.
    for item in &fresh {
        seen.insert(item);
    }
    for (source, outcome) in counts {
        metrics.stories.with_label_values(&[source.as_str(), outcome]).inc();
    }
    report.published += fresh.len() as u64;
    if !fresh.is_empty() {
        info!(stories = fresh.len(), "news published");
    }
    Ok(())
}

/// Polls every source every `poll_every` until `shutdown` (or once, with `once`), publishing
/// each new story to `md.news`. A source that fails is tried again at the next poll; a failed
/// send to Redis is retried at the next poll too (nothing is remembered as sent before it is).
pub async fn run_news(
    producer: &Producer,
    config: &NewsConfig,
    metrics: &NewsMetrics,
    shutdown: &CancellationToken,
    once: bool,
) -> Result<NewsReport, NewsError> {
    config.validate()?;
    let http = http_client(config)?;
    let mut seen = load_sent(producer.bus()).await.map_err(NewsError::History)?;
    info!(
        known = seen.len(),
        feeds = config.feeds.len(),
        cryptopanic = config.cryptopanic.is_some(),
        "news source started"
    );
    let mut report = NewsReport::default();
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = poll_once(producer, &http, config, &mut seen, metrics, &mut report) => r,
        };
        match polled {
            Ok(()) => {}
            Err(e) if once => return Err(e.into()),
            Err(e) => warn!(error = %e, "news not published; trying again at the next poll"),
        }
        if once {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.poll_every) => {}
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_specs() {
        let f = FeedSource::parse("coindesk=https://www.coindesk.com/arc/outboundfeeds/rss/").unwrap();
        assert_eq!((f.name.as_str(), f.url.as_str()), ("coindesk", "https://www.coindesk.com/arc/outboundfeeds/rss/"));
        let f = FeedSource::parse("https://www.example.com/feed?format=rss&x=1").unwrap();
        assert_eq!((f.name.as_str(), f.url.as_str()), ("example.com", "https://www.example.com/feed?format=rss&x=1"));
        assert!(FeedSource::parse("x=ftp://a/b").unwrap_err().contains("is not an http:// or https:// URL"));
        assert!(FeedSource::parse("nonsense").unwrap_err().contains("is not a URL"));
    }

    #[test]
    fn every_config_problem_is_named() {
        let mut c = NewsConfig::new(
            vec![
                FeedSource { name: "a".into(), url: "https://a.test/rss".into() },
                FeedSource { name: "a".into(), url: "ftp://a.test/rss".into() },
                FeedSource { name: "bad name".into(), url: "https://b.test/".into() },
            ],
            vec![SymbolTags::new("BTCUSD", &[]), SymbolTags::new("btcusd", &[])],
        );
        c.poll_every = Duration::from_millis(10);
        let NewsError::Config(problems) = c.validate().unwrap_err() else { panic!("not a config error") };
        assert_eq!(
            problems,
            [
                "feeds[1].name: \"a\" is used by another source",
                "feeds[1].url: \"ftp://a.test/rss\" must start with http:// or https://",
                "feeds[2].name: \"bad name\" must be 1 to 64 letters, digits, '-', '_' or '.'",
                "symbols[1]: BTCUSD is listed twice",
                "poll_every: must be at least 1 s, got 10ms",
            ]
        );
        let none = NewsConfig::new(vec![], vec![]);
        assert!(none.validate().unwrap_err().to_string().contains("no source"));
    }

    #[test]
    fn stories_become_messages_tagged_and_keyed() {
        let symbols = [SymbolTags::new("BTCUSD", &[]), SymbolTags::new("ETHUSD", &[])];
        let now = 1_796_551_200_000;
        let story = Story {
            title: "Ethereum and Bitcoin rally".into(),
            link: "http://www.example.com/rally?utm_source=rss".into(),
            summary: "x".repeat(1000),
            published_at: Some(now + 60_000),
            codes: vec![],
        };
        let item = to_item("feed", &story, &symbols, now).unwrap();
        assert_eq!(item.symbols, ["BTCUSD", "ETHUSD"]);
        assert_eq!(item.key(), "BTCUSD");
        assert_eq!(item.link, "https://example.com/rally");
        assert_eq!(item.id, link::story_id("https://example.com/rally", ""));
        // A clock ahead of ours does not put a story in the future.
        assert_eq!((item.published_at, item.fetched_at), (now, now));
        assert_eq!(item.summary.chars().count(), MAX_SUMMARY_CHARS + 1);
        let market = Story { title: "Fed holds rates".into(), link: String::new(), ..story.clone() };
        let item = to_item("feed", &market, &symbols, now).unwrap();
        assert_eq!(item.key(), tradeflow_core::news::MARKET);
        assert_eq!(item.id, link::story_id("", "Fed holds rates"));
        assert!(to_item("feed", &Story { title: "!!!".into(), ..story }, &symbols, now).is_none());
    }
}
