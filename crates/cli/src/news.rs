//! `tradeflow worker news`: crypto news onto `md.news` (see `tradeflow_ingest::news`), from the
//! flags or, when no flag names a source, from the `[news]` table of the config file:
//!
//! ```toml
//! [news]
//! feeds = ["coindesk=https://www.coindesk.com/arc/outboundfeeds/rss/"]
//! symbols = ["BTCUSDT=BTC,Bitcoin", "ETHUSDT"]
//! cryptopanic_key_env = "CRYPTOPANIC_KEY"   # optional: CryptoPanic too
//! poll_every_s = 300
//! max_age_hours = 168
//! ```

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::{Bus, BusMetrics, Producer};
use tradeflow_ingest::news::{
    AuthToken, CryptoPanicConfig, FeedSource, NewsConfig, NewsMetrics, SymbolTags, cryptopanic, run_news,
};

#[derive(Args, Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewsArgs {
    /// An RSS/Atom feed: `[NAME=]URL` (the name is its stories' source; default the host),
    /// repeatable.
    #[arg(long = "feed", value_name = "[NAME=]URL")]
    #[serde(rename = "feeds")]
    feeds: Vec<String>,
    /// A symbol to tag stories with: `SYMBOL[=ALIAS,ALIAS...]` (e.g. BTCUSD=BTC,Bitcoin; the
    /// base asset and its common name are aliases already), repeatable. Stories naming none
    /// are keyed `market`.
    #[arg(long = "symbols", value_name = "SYMBOL[=ALIASES]")]
    symbols: Vec<String>,
    /// Also poll CryptoPanic, with the key in this environment variable.
    #[arg(long)]
    cryptopanic_key_env: Option<String>,
    /// CryptoPanic's API base URL.
    #[arg(long, default_value = cryptopanic::DEFAULT_BASE_URL)]
    cryptopanic_url: String,
    /// Seconds between two polls of every source.
    #[arg(long, default_value_t = 300)]
    poll_every_s: u64,
    /// Stories published longer ago than this many hours are not sent.
    #[arg(long, default_value_t = 168)]
    max_age_hours: u64,
    /// Poll once, then stop.
    #[arg(long)]
    #[serde(skip)]
    once: bool,
    #[command(flatten)]
    #[serde(skip)]
    pub common: crate::worker::Common,
}

impl Default for NewsArgs {
    fn default() -> Self {
        Self {
            feeds: Vec::new(),
            symbols: Vec::new(),
            cryptopanic_key_env: None,
            cryptopanic_url: cryptopanic::DEFAULT_BASE_URL.into(),
            poll_every_s: 300,
            max_age_hours: 168,
            once: false,
            common: crate::worker::Common::default(),
        }
    }
}

impl NewsArgs {
    pub fn has_source(&self) -> bool {
        !self.feeds.is_empty() || self.cryptopanic_key_env.is_some()
    }

    /// The source's configuration, every problem reported at once.
    pub fn config(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<NewsConfig> {
        let mut problems = Vec::new();
        let feeds: Vec<FeedSource> = self
            .feeds
            .iter()
            .filter_map(|f| FeedSource::parse(f).map_err(|e| problems.push(format!("feed {e}"))).ok())
            .collect();
        let symbols: Vec<SymbolTags> = self
            .symbols
            .iter()
            .filter_map(|s| SymbolTags::parse(s).map_err(|e| problems.push(format!("symbols {e}"))).ok())
            .collect();
        let mut config = NewsConfig::new(feeds, symbols);
        config.poll_every = Duration::from_secs(self.poll_every_s);
        config.max_age = Duration::from_secs(self.max_age_hours.saturating_mul(3600));
        if let Some(name) = &self.cryptopanic_key_env {
            match env(name).filter(|v| !v.trim().is_empty()) {
                Some(key) => {
                    let currencies = config.symbols.iter().map(|s| s.base.clone()).collect();
                    config.cryptopanic = Some(CryptoPanicConfig {
                        base_url: self.cryptopanic_url.clone(),
                        key_env: name.clone(),
                        token: AuthToken::new(key.trim()),
                        currencies,
                    });
                }
                None => {
                    problems.push(format!("cryptopanic_key_env: environment variable {name} is not set (or empty)"))
                }
            }
        }
        if let Err(tradeflow_ingest::news::NewsError::Config(more)) = config.validate() {
            problems.extend(more);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            anyhow::bail!("news: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
        }
    }
}

/// Runs the news source until `shutdown` (or one poll with `--once`).
pub async fn run(
    args: NewsArgs,
    from_file: Option<NewsArgs>,
    bus: Bus,
    registry: &Registry,
    bus_metrics: BusMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let args = match from_file {
        Some(file) if !args.has_source() => NewsArgs { common: args.common, once: args.once, ..file },
        _ => args,
    };
    let config = args.config(&|name| std::env::var(name).ok())?;
    eprintln!(
        "news: feeds {}; cryptopanic {}; symbols {}; every {} s",
        config.feeds.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
        if config.cryptopanic.is_some() { "on" } else { "off" },
        config.symbols.iter().map(|s| s.symbol.as_str()).collect::<Vec<_>>().join(", "),
        config.poll_every.as_secs()
    );
    let metrics = NewsMetrics::register(registry)?;
    let producer = Producer::new(bus, "news").with_metrics(bus_metrics);
    let report = run_news(&producer, &config, &metrics, &shutdown, args.once).await.context("news source")?;
    println!(
        "news: {} polls, {} stories read, {} published, {} duplicates, {} too old, {} failed fetches",
        report.polls, report.read, report.published, report.duplicates, report.too_old, report.failed_fetches
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_the_flags_is_reported() {
        let args = NewsArgs {
            feeds: vec!["ftp://x/y".into(), "a=https://a.test/rss".into(), "a=https://b.test/rss".into()],
            symbols: vec!["BTC USD".into()],
            cryptopanic_key_env: Some("TRADEFLOW_TEST_NO_SUCH_KEY".into()),
            poll_every_s: 0,
            ..NewsArgs::default()
        };
        let err = args.config(&|_| None).unwrap_err().to_string();
        for expected in [
            "feed \"ftp://x/y\": \"ftp://x/y\" is not an http:// or https:// URL with a host",
            "symbols \"BTC USD\": the symbol must be",
            "cryptopanic_key_env: environment variable TRADEFLOW_TEST_NO_SUCH_KEY is not set",
            "feeds[1].name: \"a\" is used by another source",
            "poll_every: must be at least 1 s",
        ] {
            assert!(err.contains(expected), "{expected} not in {err}");
        }
        let ok =
            NewsArgs { symbols: vec!["BTCUSDT".into()], cryptopanic_key_env: Some("K".into()), ..NewsArgs::default() };
        let config = ok.config(&|n| (n == "K").then(|| "tok".to_string())).unwrap();
        let cp = config.cryptopanic.unwrap();
        assert_eq!((cp.key_env.as_str(), cp.currencies.clone()), ("K", vec!["BTC".to_string()]));
    }
}
