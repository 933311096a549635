//! Which configured symbols a story is about: a symbol is named in the title or summary by
//! itself or one of its aliases (`BTCUSD` by `BTC` or `Bitcoin`), as whole words, in any case.

use tradeflow_core::news::normalised_title;

/// Quote currencies stripped from a symbol to find its base asset (`BTCUSDT` → `BTC`); longest
/// first, so that `USDT` wins over `USD`.
const QUOTES: [&str; 8] = ["FDUSD", "USDT", "USDC", "BUSD", "USD", "EUR", "BTC", "ETH"];

/// Common names of the most traded assets, so that `--symbols BTCUSD` alone also finds stories
/// that only say "Bitcoin". More aliases are given in the configuration.
const NAMES: [(&str, &str); 12] = [
    ("BTC", "bitcoin"),
    ("ETH", "ethereum"),
    ("SOL", "solana"),
    ("XRP", "ripple"),
    ("BNB", "binance coin"),
    ("ADA", "cardano"),
    ("DOGE", "dogecoin"),
    ("AVAX", "avalanche"),
    ("DOT", "polkadot"),
    ("LINK", "chainlink"),
    ("LTC", "litecoin"),
    ("TRX", "tron"),
];

/// One configured symbol and the words that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolTags {
    /// As in candles (`BTCUSD`).
    pub symbol: String,
    /// Normalised ([`normalised_title`]) names: the symbol, its base asset, the asset's common
    /// name and the configured aliases, each once.
    pub names: Vec<String>,
    /// The base asset (`BTC`), upper case; the code CryptoPanic tags a post with.
    pub base: String,
}

impl SymbolTags {
    /// `symbol` (any case; kept upper case) named by itself, its base asset, the base's common
    /// name and `aliases`.
    pub fn new(symbol: &str, aliases: &[String]) -> Self {
        let symbol = symbol.trim().to_ascii_uppercase();
        let base = base_asset(&symbol).to_string();
        let mut names = Vec::new();
        let mut add = |n: &str| {
            let n = normalised_title(n);
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        };
        add(&symbol);
        add(&base);
        if let Some((_, name)) = NAMES.iter().find(|(code, _)| *code == base) {
            add(name);
        }
        for a in aliases {
            add(a);
        }
        Self { symbol, names, base }
    }

    /// `SYMBOL[=ALIAS,ALIAS...]` (the `--symbols` form).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (symbol, aliases) = match spec.split_once('=') {
            Some((s, a)) => (s, a.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect()),
            None => (spec, Vec::new()),
        };
        let symbol = symbol.trim();
        if symbol.is_empty()
            || symbol.len() > 32
            || !symbol.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!("{spec:?}: the symbol must be 1 to 32 letters, digits, '-', '_' or '.'"));
        }
        if symbol.eq_ignore_ascii_case(tradeflow_core::news::MARKET) {
            return Err(format!("{spec:?}: \"market\" is the key of untagged stories, not a symbol"));
        }
        Ok(Self::new(symbol, &aliases))
    }

    /// Whether `text` (already normalised, with a space at each end) names this symbol.
    fn named_in(&self, padded: &str) -> bool {
        self.names.iter().any(|n| padded.contains(&format!(" {n} ")))
    }
}

/// `BTCUSDT` → `BTC`; a symbol with no known quote suffix is its own base, and so is one
/// that would leave a single letter (`WBTC` is not W quoted in BTC).
pub fn base_asset(symbol: &str) -> &str {
    for q in QUOTES {
        if let Some(base) = symbol.strip_suffix(q)
            && base.len() >= 2
        {
            return base;
        }
    }
    symbol
}

/// The symbols of `tags` named in `title` or `summary`, in configuration order, plus those
/// whose base asset is among `codes` (a provider's own currency tags).
pub fn symbols_of(tags: &[SymbolTags], title: &str, summary: &str, codes: &[String]) -> Vec<String> {
    let padded = format!(" {} {} ", normalised_title(title), normalised_title(summary));
    tags.iter()
        .filter(|t| t.named_in(&padded) || codes.iter().any(|c| c.eq_ignore_ascii_case(&t.base)))
        .map(|t| t.symbol.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> Vec<SymbolTags> {
        vec![
            SymbolTags::parse("btcusd").unwrap(),
            SymbolTags::parse("ETHUSDT=Ether, Vitalik").unwrap(),
            SymbolTags::parse("SOLUSDT").unwrap(),
        ]
    }

    #[test]
    fn symbols_are_found_by_code_name_or_alias_as_whole_words() {
        let t = tags();
        assert_eq!(t[0].names, ["btcusd", "btc", "bitcoin"]);
        assert_eq!(t[1].names, ["ethusdt", "eth", "ethereum", "ether", "vitalik"]);
        assert_eq!(symbols_of(&t, "Bitcoin tops $100k", "", &[]), ["BTCUSD"]);
        assert_eq!(symbols_of(&t, "BTC and ETH rally", "", &[]), ["BTCUSD", "ETHUSDT"]);
        assert_eq!(symbols_of(&t, "Markets calm", "Vitalik speaks at a conference", &[]), ["ETHUSDT"]);
        // Parts of words do not count: "Solar" is not Solana, "Ethernet" is not Ether.
        assert!(symbols_of(&t, "Solar-powered mining on Ethernet", "", &[]).is_empty());
        assert!(symbols_of(&t, "Fed holds rates", "Stocks flat", &[]).is_empty());
        assert_eq!(symbols_of(&t, "Fed holds rates", "", &["sol".to_string()]), ["SOLUSDT"]);
    }

    #[test]
    fn bases_and_bad_specs() {
        assert_eq!(base_asset("BTCUSDT"), "BTC");
        assert_eq!(base_asset("ETHBTC"), "ETH");
        assert_eq!(base_asset("BTCUSD"), "BTC");
        assert_eq!(base_asset("USDT"), "USDT");
        assert_eq!(base_asset("SYN0"), "SYN0");
        assert_eq!(base_asset("WBTC"), "WBTC");
        assert!(SymbolTags::parse("").unwrap_err().contains("the symbol must be"));
        assert!(SymbolTags::parse("BTC USD=x").unwrap_err().contains("the symbol must be"));
        assert!(SymbolTags::parse("market").unwrap_err().contains("key of untagged stories"));
    }
}
