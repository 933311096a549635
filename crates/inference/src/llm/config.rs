//! Analyst configuration: a TOML file of `[[analyst]]` tables. API keys are never in the file:
//! it names environment variables (`api_key_envs`), read at load time into [`ApiKey`]s, which
//! print as `***`.
//!
//! ```toml
//! [[analyst]]
//! name = "gpt"
//! dialect = "openai"                      # or "anthropic"
//! base_url = "https://api.openai.com/v1"  # default per dialect
//! model = "gpt-4o-mini"
//! api_key_envs = ["OPENAI_KEY", "OPENAI_KEY_2"]   # primary, then backups
//! timeout_ms = 20000
//! min_interval_ms = 1000
//! cache_ttl_s = 300                       # 0: no cache; at most 2592000 (30 days)
//! # max_candle_age_s = 7200              # default: two intervals of the candle
//! max_tokens = 512
//! # temperature = 0.2                    # default: the provider's
//! price = { input_per_mtok_usd = 0.15, output_per_mtok_usd = 0.60 }
//! headlines = 5                           # recent news headlines in the prompt; 0: none
//! headline_max_age_s = 86400
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// Rule model names, which an analyst may not take (signal ids are candle id + model name).
const RESERVED: [&str; 6] = ["technical", "rsi", "macd", "bollinger", "volume", "stochastic"];

/// Longest timeout accepted: a batch waits for its slowest analyst, and entries idle longer
/// than the stream's `claim_idle_ms` (30 s by default) may be claimed by another member.
pub const MAX_TIMEOUT_MS: u64 = 25_000;

/// Longest `cache_ttl_s` accepted (30 days): an answer's expiry is the clock plus this, and a
/// larger one (up to TOML's largest integer, 2^63 - 1 seconds) would overflow it.
pub const MAX_CACHE_TTL_S: u64 = 30 * 86_400;

/// The wire format an analyst speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST {base_url}/chat/completions` (OpenAI, DeepSeek, OpenRouter, Ollama, vLLM, ...).
    OpenAi,
    /// `POST {base_url}/v1/messages` (Anthropic Messages).
    Anthropic,
}

impl Dialect {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }
}

/// An API key. Its `Debug` and `Display` print `***`; only the request builder reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    env: String,
    secret: String,
}

impl ApiKey {
    /// The key read from environment variable `env`.
    pub fn new(env: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { env: env.into(), secret: secret.into() }
    }

    /// The name of the environment variable it came from: how logs and errors name it.
    pub fn env(&self) -> &str {
        &self.env
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input_per_mtok_usd: f64,
    #[serde(default)]
    pub output_per_mtok_usd: f64,
}

impl Price {
    pub fn cost_usd(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok_usd + output_tokens as f64 * self.output_per_mtok_usd) / 1e6
    }
}

/// One `[[analyst]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalystConfig {
    /// Model name on its signals; unique, and not a rule model's name.
    pub name: String,
    /// `openai` or `anthropic` (checked by [`AnalystConfig::validate`]; see [`Dialect`]).
    pub dialect: String,
    /// Default: the dialect's public endpoint.
    #[serde(default)]
    pub base_url: Option<String>,
    pub model: String,
    /// Environment variables holding the keys: the primary, then the backups. May be empty
    /// for an OpenAI-compatible server without authentication (Ollama, vLLM).
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// The keys read from `api_key_envs` (those that are set), in the same order.
    #[serde(skip)]
    pub api_keys: Vec<ApiKey>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_min_interval_ms")]
    pub min_interval_ms: u64,
    /// 0: no cache.
    #[serde(default = "default_cache_ttl_s")]
    pub cache_ttl_s: u64,
    /// Candles that closed longer ago than this are not sent (replays, backfills); default two
    /// intervals of the candle.
    #[serde(default)]
    pub max_candle_age_s: Option<u64>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Default: the provider's.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// OpenAI dialect only: ask for `response_format: {"type": "json_object"}` (not every
    /// OpenAI-compatible server supports it).
    #[serde(default)]
    pub json_mode: bool,
    #[serde(default)]
    pub price: Price,
    /// Recent headlines about the candle's symbol or the market given in the prompt (from
    /// `md.news`, see [`crate::news`]); 0: none. At most [`crate::news::MAX_HEADLINES`].
    #[serde(default = "default_headlines")]
    pub headlines: usize,
    /// Only headlines published this long before the candle's close (or the analysis) or less.
    #[serde(default = "default_headline_max_age_s")]
    pub headline_max_age_s: u64,
}

fn default_headlines() -> usize {
    5
}
fn default_headline_max_age_s() -> u64 {
    86_400
}
fn default_timeout_ms() -> u64 {
    20_000
}
fn default_min_interval_ms() -> u64 {
    1_000
}
fn default_cache_ttl_s() -> u64 {
    300
}
fn default_max_tokens() -> u32 {
    512
}

impl AnalystConfig {
    /// A configuration with the defaults, for code and tests.
    pub fn new(name: &str, dialect: Dialect, base_url: &str, model: &str, api_keys: Vec<ApiKey>) -> Self {
        Self {
            name: name.into(),
            dialect: dialect.as_str().into(),
            base_url: Some(base_url.into()),
            model: model.into(),
            api_key_envs: api_keys.iter().map(|k| k.env().to_string()).collect(),
            api_keys,
            timeout_ms: default_timeout_ms(),
            min_interval_ms: default_min_interval_ms(),
            cache_ttl_s: default_cache_ttl_s(),
            max_candle_age_s: None,
            max_tokens: default_max_tokens(),
            temperature: None,
            json_mode: false,
            price: Price::default(),
            headlines: default_headlines(),
            headline_max_age_s: default_headline_max_age_s(),
        }
    }

    /// The dialect, once [`AnalystConfig::validate`] has passed.
    pub fn dialect(&self) -> Option<Dialect> {
        Dialect::parse(&self.dialect)
    }

    /// `base_url` or the dialect's default, without a trailing slash.
    pub fn base_url(&self) -> String {
        let url = match (&self.base_url, self.dialect()) {
            (Some(u), _) => u.as_str(),
            (None, Some(d)) => d.default_base_url(),
            (None, None) => "",
        };
        url.trim_end_matches('/').to_string()
    }

    /// Reads the keys named in `api_key_envs` through `lookup` (the environment, in
    /// production). Unset or empty variables are left out; [`AnalystConfig::validate`] names them.
    pub fn resolve_keys(&mut self, lookup: &dyn Fn(&str) -> Option<String>) {
        self.api_keys = self
            .api_key_envs
            .iter()
            .filter_map(|env| lookup(env).filter(|v| !v.trim().is_empty()).map(|v| ApiKey::new(env, v.trim())))
            .collect();
    }

    /// Every problem, each prefixed with `path` (e.g. `analyst[0]`).
    pub fn validate(&self, path: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, what: String| problems.push(format!("{path}.{key}: {what}"));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bad("name", format!("{:?} must be 1 to 64 letters, digits, '-', '_' or '.'", self.name));
        } else if RESERVED.contains(&self.name.as_str()) {
            bad("name", format!("{:?} is the name of a rule model", self.name));
        }
        let dialect = self.dialect();
        if dialect.is_none() {
            bad("dialect", format!("unknown dialect {:?}; expected \"openai\" or \"anthropic\"", self.dialect));
        }
        if let Some(url) = &self.base_url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if u.query().is_some() || u.fragment().is_some() {
                        bad("base_url", format!("{url:?} must have no query or fragment"));
                    }
                }
                Ok(_) => bad("base_url", format!("{url:?} is not an http:// or https:// URL with a host")),
                Err(e) => bad("base_url", format!("{url:?} is not a URL: {e}")),
            }
        }
        if self.model.trim().is_empty() {
            bad("model", "must not be empty".into());
        }
        if dialect == Some(Dialect::Anthropic) && self.api_key_envs.is_empty() {
            bad("api_key_envs", "the anthropic dialect needs at least one key".into());
        }
        for (i, env) in self.api_key_envs.iter().enumerate() {
            if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bad(&format!("api_key_envs[{i}]"), format!("{env:?} is not an environment variable name"));
            } else if self.api_key_envs[..i].contains(env) {
                bad(&format!("api_key_envs[{i}]"), format!("{env} is listed twice"));
            } else if !self.api_keys.iter().any(|k| k.env() == env) {
                bad(&format!("api_key_envs[{i}]"), format!("environment variable {env} is not set (or empty)"));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            bad("timeout_ms", format!("must be from 1 to {MAX_TIMEOUT_MS}, got {}", self.timeout_ms));
        }
        if self.min_interval_ms > 3_600_000 {
            bad("min_interval_ms", format!("must be at most 3600000 (an hour), got {}", self.min_interval_ms));
        }
        if self.cache_ttl_s > MAX_CACHE_TTL_S {
            bad("cache_ttl_s", format!("must be at most {MAX_CACHE_TTL_S} (30 days), got {}", self.cache_ttl_s));
        }
        if self.max_candle_age_s == Some(0) {
            bad("max_candle_age_s", "must be at least 1".into());
        }
        if self.max_tokens == 0 {
            bad("max_tokens", "must be at least 1".into());
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            bad("temperature", format!("must be from 0 to 2, got {t}"));
        }
        if self.headlines > crate::news::MAX_HEADLINES {
            bad("headlines", format!("must be at most {}, got {}", crate::news::MAX_HEADLINES, self.headlines));
        }
        if self.headline_max_age_s == 0 || self.headline_max_age_s > 30 * 86_400 {
            bad("headline_max_age_s", format!("must be from 1 to 2592000 (30 days), got {}", self.headline_max_age_s));
        }
        if self.json_mode && dialect == Some(Dialect::Anthropic) {
            bad("json_mode", "is for the openai dialect only".into());
        }
        for (key, v) in [
            ("price.input_per_mtok_usd", self.price.input_per_mtok_usd),
            ("price.output_per_mtok_usd", self.price.output_per_mtok_usd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bad(key, format!("must be a non-negative number, got {v}"));
            }
        }
        problems
    }
}

/// The inference configuration file: rule parameters (`[rules]`), market-condition thresholds
/// (`[condition]`) and the LLM analysts (`[[analyst]]`); every part optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    #[serde(default, rename = "analyst")]
    pub analysts: Vec<AnalystConfig>,
    #[serde(default)]
    pub rules: crate::rules::RuleParams,
    #[serde(default)]
    pub condition: crate::condition::ConditionParams,
}

impl LlmConfig {
    /// Reads `path`, keys from the process environment.
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses a configuration, reads its keys through `lookup` and validates it.
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let mut config: LlmConfig = toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
        for a in &mut config.analysts {
            a.resolve_keys(lookup);
        }
        let problems = config.validate();
        if problems.is_empty() { Ok(config) } else { Err(problems) }
    }

    /// Every problem of every analyst, with its key path.
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.rules.validate().into_iter().map(|p| format!("rules: {p}")).collect();
        problems.extend(self.condition.validate().into_iter().map(|p| format!("condition: {p}")));
        for (i, a) in self.analysts.iter().enumerate() {
            problems.extend(a.validate(&format!("analyst[{i}]")));
            if self.analysts[..i].iter().any(|b| b.name == a.name) {
                problems.push(format!("analyst[{i}].name: {:?} is used by an earlier analyst", a.name));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "K1" => Some("sk-one".into()),
            "K2" => Some("sk-two".into()),
            "EMPTY" => Some("  ".into()),
            _ => None,
        }
    }

    #[test]
    fn defaults_and_keys_from_the_environment() {
        let c = LlmConfig::parse(
            r#"
[[analyst]]
name = "gpt"
dialect = "openai"
model = "gpt-4o-mini"
api_key_envs = ["K1", "K2"]
price = { input_per_mtok_usd = 0.15, output_per_mtok_usd = 0.6 }

[[analyst]]
name = "claude"
dialect = "anthropic"
model = "claude-3-5-haiku-latest"
api_key_envs = ["K2"]
timeout_ms = 5000
max_candle_age_s = 60
"#,
            &env,
        )
        .unwrap();
        let gpt = &c.analysts[0];
        assert_eq!(gpt.dialect(), Some(Dialect::OpenAi));
        assert_eq!(gpt.base_url(), "https://api.openai.com/v1");
        assert_eq!((gpt.timeout_ms, gpt.min_interval_ms, gpt.cache_ttl_s), (20_000, 1_000, 300));
        assert_eq!((gpt.max_candle_age_s, gpt.max_tokens, gpt.temperature), (None, 512, None));
        assert_eq!(gpt.api_keys.iter().map(ApiKey::env).collect::<Vec<_>>(), ["K1", "K2"]);
        assert_eq!(gpt.api_keys[1].secret(), "sk-two");
        assert_eq!(gpt.price.cost_usd(1_000_000, 500_000), 0.45);
        let claude = &c.analysts[1];
        assert_eq!(claude.base_url(), "https://api.anthropic.com");
        assert_eq!((claude.timeout_ms, claude.max_candle_age_s), (5_000, Some(60)));
        let debug = format!("{c:?}");
        assert!(!debug.contains("sk-one") && !debug.contains("sk-two") && debug.contains("***"), "{debug}");
        assert_eq!(format!("{}", gpt.api_keys[0]), "***");
    }

    /// Regression (found while writing the fuzz targets, issue #23): a `cache_ttl_s` of 2^63 - 1
    /// (TOML's largest integer) was accepted, and caching the analyst's first valid answer then
    /// panicked the worker ("overflow when adding duration to instant").
    #[test]
    fn a_cache_ttl_past_30_days_is_refused() {
        let text =
            "[[analyst]]\nname = \"gpt\"\ndialect = \"openai\"\nmodel = \"m\"\ncache_ttl_s = 9223372036854775807\n";
        let problems = LlmConfig::parse(text, &env).unwrap_err();
        assert_eq!(problems, ["analyst[0].cache_ttl_s: must be at most 2592000 (30 days), got 9223372036854775807"]);
        let month = text.replace("9223372036854775807", "2592000");
        assert_eq!(LlmConfig::parse(&month, &env).unwrap().analysts[0].cache_ttl_s, MAX_CACHE_TTL_S);
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let problems = LlmConfig::parse(
            r#"
[[analyst]]
name = "technical"
dialect = "gemini"
base_url = "ftp://example.com"
model = ""
api_key_envs = ["K1", "MISSING", "K1", "EMPTY", "bad-name"]
timeout_ms = 0
max_candle_age_s = 0
max_tokens = 0
temperature = 3.5
price = { input_per_mtok_usd = -1.0 }

[[analyst]]
name = "claude"
dialect = "anthropic"
base_url = "not a url"
model = "m"
json_mode = true
headlines = 51
headline_max_age_s = 0

[[analyst]]
name = "claude"
dialect = "openai"
model = "m"
timeout_ms = 60000
"#,
            &env,
        )
        .unwrap_err();
        let expected = [
            "analyst[0].name: \"technical\" is the name of a rule model",
            "analyst[0].dialect: unknown dialect \"gemini\"; expected \"openai\" or \"anthropic\"",
            "analyst[0].base_url: \"ftp://example.com\" is not an http:// or https:// URL with a host",
            "analyst[0].model: must not be empty",
            "analyst[0].api_key_envs[1]: environment variable MISSING is not set (or empty)",
            "analyst[0].api_key_envs[2]: K1 is listed twice",
            "analyst[0].api_key_envs[3]: environment variable EMPTY is not set (or empty)",
            "analyst[0].api_key_envs[4]: \"bad-name\" is not an environment variable name",
            "analyst[0].timeout_ms: must be from 1 to 25000, got 0",
            "analyst[0].max_candle_age_s: must be at least 1",
            "analyst[0].max_tokens: must be at least 1",
            "analyst[0].temperature: must be from 0 to 2, got 3.5",
            "analyst[0].price.input_per_mtok_usd: must be a non-negative number, got -1",
            "analyst[1].base_url: \"not a url\" is not a URL: relative URL without a base",
            "analyst[1].api_key_envs: the anthropic dialect needs at least one key",
            "analyst[1].headlines: must be at most 50, got 51",
            "analyst[1].headline_max_age_s: must be from 1 to 2592000 (30 days), got 0",
            "analyst[1].json_mode: is for the openai dialect only",
            "analyst[2].timeout_ms: must be from 1 to 25000, got 60000",
            "analyst[2].name: \"claude\" is used by an earlier analyst",
        ];
        assert_eq!(problems, expected);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_by_the_parser() {
        let e =
            LlmConfig::parse("[[analyst]]\nname = \"a\"\ndialect = \"openai\"\nmodel = \"m\"\napi_key = \"x\"\n", &env)
                .unwrap_err();
        assert!(e[0].contains("unknown field `api_key`"), "{e:?}");
        let e = LlmConfig::parse(
            "[[analyst]]\nname = \"a\"\ndialect = \"openai\"\nmodel = \"m\"\ntimeout_ms = \"1s\"\n",
            &env,
        )
        .unwrap_err();
        assert!(e[0].contains("timeout_ms"), "{e:?}");
        assert_eq!(LlmConfig::parse("", &env).unwrap().analysts.len(), 0);
    }

    #[test]
    fn rule_and_condition_parameters_are_read_and_checked() {
        let ok = LlmConfig::parse("[rules]\nrsi_oversold = 25.0\n[condition]\nwindow = 50\n", &|_| None).unwrap();
        assert_eq!((ok.rules.rsi_oversold, ok.rules.rsi_overbought, ok.condition.window), (25.0, 70.0, 50));
        let problems =
            LlmConfig::parse("[rules]\nrsi_oversold = 80.0\nvolume_spike = 0.5\n[condition]\nwindow = 0\n", &|_| None)
                .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("rules: rsi_oversold (80) and rsi_overbought (70)"), "{problems:?}");
        assert!(problems[1].starts_with("rules: volume_spike must be above 1"), "{problems:?}");
        assert!(problems[2].starts_with("condition: window must be within 1..=10000, got 0"), "{problems:?}");
        let unknown = LlmConfig::parse("[rules]\nrsi_period = 3\n", &|_| None).unwrap_err();
        assert!(unknown[0].contains("unknown field `rsi_period`"), "{unknown:?}");
    }
}
