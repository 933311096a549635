//! [`FuturesConfig`] and [`Credentials`].
//!
//! The configuration names the environment variables that hold the API key and secret, never
//! the values; [`Credentials`] holds the values and prints as `***`.

use std::fmt;
use std::time::Duration;

use super::error::FuturesError;

/// Binance USDⓈ-M futures, production.
pub const MAINNET_URL: &str = "https://fapi.binance.com";
/// Binance USDⓈ-M futures testnet.
pub const TESTNET_URL: &str = "https://testnet.binancefuture.com";

/// Binance's largest accepted `recvWindow`.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq)]
pub struct FuturesConfig {
    /// REST base URL; `None`: [`MAINNET_URL`], or [`TESTNET_URL`] with `testnet`.
    pub base_url: Option<String>,
    /// Use the testnet when `base_url` is not set (default false).
    pub testnet: bool,
    /// Name of the environment variable holding the API key (default `BINANCE_API_KEY`).
    pub api_key_env: String,
    /// Name of the environment variable holding the API secret (default `BINANCE_API_SECRET`).
    pub secret_env: String,
    /// How long after its `timestamp` Binance still accepts a request (default 5000, at most 60000).
    pub recv_window_ms: u64,
    /// Time limit of one HTTP request, connect to last body byte (default 10 s).
    pub timeout: Duration,
    /// Retries after a 5xx, a timeout, a connection error, a 429 or a 418 (default 3).
    pub max_retries: u32,
    /// Backoff before the first retry, doubling up to `backoff_max` (default 250 ms, 5 s).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for FuturesConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            testnet: false,
            api_key_env: "BINANCE_API_KEY".into(),
            secret_env: "BINANCE_API_SECRET".into(),
            recv_window_ms: 5000,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl FuturesConfig {
    /// The base URL requests go to: `base_url` if set, else by `testnet`; no trailing `/`.
    pub fn effective_base_url(&self) -> &str {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/'),
            None if self.testnet => TESTNET_URL,
            None => MAINNET_URL,
        }
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
        for (name, var) in [("api_key_env", &self.api_key_env), ("secret_env", &self.secret_env)] {
            if var.is_empty() || var.contains(['=', '\0']) {
                problems.push(format!("{name}: {var:?} is not an environment variable name"));
            }
        }
        if !(1..=MAX_RECV_WINDOW_MS).contains(&self.recv_window_ms) {
            problems.push(format!("recv_window_ms: {} is not within 1..={MAX_RECV_WINDOW_MS}", self.recv_window_ms));
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

/// An API key and its secret. `Debug` prints `***` for both.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) api_key: String,
    pub(crate) secret: String,
}

impl Credentials {
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { api_key: api_key.into(), secret: secret.into() }
    }

    /// Reads both from the environment variables `api_key_env` and `secret_env`; an unset,
    /// empty or non-UTF-8 variable is an error naming the variable (never showing a value).
    pub fn from_env(api_key_env: &str, secret_env: &str) -> Result<Self, FuturesError> {
        let read = |var: &str, what: &'static str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(FuturesError::MissingCredential { var: var.to_string(), what }),
        };
        Ok(Self { api_key: read(api_key_env, "API key")?, secret: read(secret_env, "API secret")? })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("api_key", &"***").field("secret", &"***").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_by_testnet_unless_set() {
        let mut c = FuturesConfig::default();
        assert_eq!(c.effective_base_url(), "https://fapi.binance.com");
        c.testnet = true;
        assert_eq!(c.effective_base_url(), "https://testnet.binancefuture.com");
        c.base_url = Some("http://127.0.0.1:8080/".into());
        assert_eq!(c.effective_base_url(), "http://127.0.0.1:8080");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_lists_every_problem() {
        let c = FuturesConfig {
            base_url: Some("ftp://x".into()),
            api_key_env: String::new(),
            secret_env: "A=B".into(),
            recv_window_ms: 70_000,
            timeout: Duration::ZERO,
            max_retries: 21,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(1),
            ..FuturesConfig::default()
        };
        let problems = c.validate().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            ["base_url", "api_key_env", "secret_env", "recv_window_ms", "timeout", "max_retries", "backoff_initial"]
        );
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials::new("my-api-key", "my-secret");
        let text = format!("{c:?}");
        assert!(!text.contains("my-api-key") && !text.contains("my-secret"), "{text}");
        assert!(text.contains("***"));
    }

    #[test]
    fn missing_env_names_the_variable() {
        let e = Credentials::from_env("TRADEFLOW_TEST_SURELY_UNSET_KEY", "PATH").unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable TRADEFLOW_TEST_SURELY_UNSET_KEY is not set (or empty): set it to the Binance \
             futures API key"
        );
    }
}
