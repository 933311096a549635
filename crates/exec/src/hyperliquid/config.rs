//! [`HyperliquidConfig`]: where to connect, which environment variable holds the signing key,
//! whose account is traded, timeouts and retries. The configuration names the variable, never
//! the key.

use std::collections::BTreeMap;
use std::time::Duration;

use super::signing::Address;

/// Hyperliquid mainnet.
pub const MAINNET_URL: &str = "https://api.hyperliquid.xyz";
/// Hyperliquid testnet.
pub const TESTNET_URL: &str = "https://api.hyperliquid-testnet.xyz";

/// The Hyperliquid coin of our `symbol`: its entry in `coins`, else the symbol without a
/// `USDT`, `USDC` or `USD` suffix (`BTCUSDT` → `BTC`).
pub fn coin_of(symbol: &str, coins: &BTreeMap<String, String>) -> String {
    if let Some(c) = coins.get(symbol) {
        return c.clone();
    }
    ["USDT", "USDC", "USD"]
        .iter()
        .find_map(|q| symbol.strip_suffix(q).filter(|b| !b.is_empty()))
        .unwrap_or(symbol)
        .to_string()
}

#[derive(Debug, Clone, PartialEq)]
pub struct HyperliquidConfig {
    /// REST base URL; `None`: [`MAINNET_URL`], or [`TESTNET_URL`] with `testnet`.
    pub base_url: Option<String>,
    /// Sign for the testnet (phantom agent source `b`) and, without `base_url`, connect to it.
    pub testnet: bool,
    /// Environment variable holding the signing key: the account's own key or an API wallet
    /// (agent) approved for it (default `HYPERLIQUID_PRIVATE_KEY`).
    pub key_env: String,
    /// The account whose positions, orders and fills are read, when the key is an agent's
    /// (`0x…`); default: the key's own address.
    pub account_address: Option<String>,
    /// A vault or sub-account traded on behalf of (`vaultAddress`, part of the signed hash);
    /// its state is the one read.
    pub vault_address: Option<String>,
    /// Our symbol → Hyperliquid coin (`BTCUSDT = "BTC"`); a symbol not listed drops a `USDT`,
    /// `USDC` or `USD` suffix.
    pub coins: BTreeMap<String, String>,
    /// Worst price a market order (an IOC limit order) accepts, as a fraction away from the
    /// mid price; also the room between a protective order's trigger and its limit (default
    /// 0.05, the SDK's).
    pub slippage: f64,
    /// Cross margin (default) or isolated, for `updateLeverage`.
    pub cross_margin: bool,
    /// Time limit of one HTTP request (default 10 s).
    pub timeout: Duration,
    /// Retries after a 5xx, a timeout, a connection error or a 429 (default 3).
    pub max_retries: u32,
    /// Backoff before the first retry, doubling up to `backoff_max` (default 250 ms, 5 s).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for HyperliquidConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            testnet: false,
            key_env: "HYPERLIQUID_PRIVATE_KEY".into(),
            account_address: None,
            vault_address: None,
            coins: BTreeMap::new(),
            slippage: 0.05,
            cross_margin: true,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl HyperliquidConfig {
    /// The base URL requests go to: `base_url` if set, else by `testnet`; no trailing `/`.
    pub fn effective_base_url(&self) -> &str {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/'),
            None if self.testnet => TESTNET_URL,
            None => MAINNET_URL,
        }
    }

    /// The Hyperliquid coin of our `symbol` (see [`coin_of`]).
    pub fn coin(&self, symbol: &str) -> String {
        coin_of(symbol, &self.coins)
    }

    /// Every problem at once, each message naming its field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(url) = &self.base_url {
            let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.starts_with('/') && !host.contains(['?', '#', ' ']) => {}
                _ => problems.push(format!("base_url: {url:?} is not an http:// or https:// URL without query")),
            }
        }
        if self.key_env.is_empty() || self.key_env.contains(['=', '\0']) {
            problems.push(format!("key_env: {:?} is not an environment variable name", self.key_env));
        }
        for (name, value) in [("account_address", &self.account_address), ("vault_address", &self.vault_address)] {
            if let Some(v) = value
                && let Err(e) = Address::parse(v)
            {
                problems.push(format!("{name}: {e}"));
            }
        }
        for (symbol, coin) in &self.coins {
            if coin.is_empty() || coin.contains(char::is_whitespace) {
                problems.push(format!("coins.{symbol}: {coin:?} is not a coin name"));
            }
        }
        if !(self.slippage > 0.0 && self.slippage < 0.5) {
            problems.push(format!("slippage: {} is not within (0, 0.5)", self.slippage));
        }
        if self.timeout.is_zero() {
            problems.push("timeout: must be more than zero".into());
        }
        if self.max_retries > 20 {
            problems.push(format!("max_retries: {} is more than 20", self.max_retries));
        }
        if self.backoff_initial > self.backoff_max {
            problems.push(format!(
                "backoff_initial: {:?} is more than backoff_max {:?}",
                self.backoff_initial, self.backoff_max
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_by_testnet_unless_set() {
        let mut c = HyperliquidConfig::default();
        assert_eq!(c.effective_base_url(), MAINNET_URL);
        c.testnet = true;
        assert_eq!(c.effective_base_url(), TESTNET_URL);
        c.base_url = Some("http://127.0.0.1:9/".into());
        assert_eq!(c.effective_base_url(), "http://127.0.0.1:9");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn coins_from_symbols() {
        let mut c = HyperliquidConfig::default();
        assert_eq!(c.coin("BTCUSDT"), "BTC");
        assert_eq!(c.coin("ETHUSD"), "ETH");
        assert_eq!(c.coin("SOL"), "SOL");
        assert_eq!(c.coin("USDT"), "USDT");
        c.coins.insert("PEPEUSDT".into(), "kPEPE".into());
        assert_eq!(c.coin("PEPEUSDT"), "kPEPE");
    }

    #[test]
    fn validate_lists_every_problem() {
        let c = HyperliquidConfig {
            base_url: Some("ftp://x".into()),
            key_env: String::new(),
            account_address: Some("0x12".into()),
            vault_address: Some("nope".into()),
            slippage: 0.0,
            timeout: Duration::ZERO,
            max_retries: 21,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(1),
            ..HyperliquidConfig::default()
        };
        let problems = c.validate().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "base_url",
                "key_env",
                "account_address",
                "vault_address",
                "slippage",
                "timeout",
                "max_retries",
                "backoff_initial"
            ]
        );
    }
}
