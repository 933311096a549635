//! The edge's configuration: the `[edge]` table of the process config file, then environment
//! overrides, validated at start-up with every problem reported at once.
//!
//! ```toml
//! [edge]
//! listen = "127.0.0.1:8080"        # env TRADEFLOW_EDGE_LISTEN
//! anonymous_read = false           # GET routes open to callers without a token (as viewers)
//! token_ttl_s = 3600
//! cors_origins = ["https://ops.example.com"]   # [] = no CORS headers, ["*"] = any origin
//! body_limit_bytes = 1048576
//! jwt_secret_env = "TRADEFLOW_JWT_SECRET"      # the secret itself never sits in the file
//! jwt_previous_secret_env = "TRADEFLOW_JWT_PREVIOUS_SECRET"  # rotation: still accepted until its tokens expire
//! [edge.rate_limit]                # per caller (token subject, else IP), per minute
//! read_per_minute = 6000
//! write_per_minute = 120
//! auth_per_minute = 10
//! probe_per_minute = 600           # /health, /ready, /metrics (never authenticated)
//! [edge.prices]                   # GET /market/price: exchanges first (all off by default)
//! binance_url = "https://fapi.binance.com"
//! hyperliquid_url = "https://api.hyperliquid.xyz"
//! cache_ms = 2000
//! datasets_dir = "data/datasets"  # GET/DELETE /data/datasets (tradeflow data's <data-dir>/datasets)
//! models_refresh_s = 60            # how often tradeflow_model_live_hit_rate is measured from the store
//! [edge.ws]
//! client_queue = 256               # events buffered per client; a client that falls behind is dropped
//! status_interval_s = 5
//! heartbeat_s = 15
//! max_clients = 10000
//! [edge.tasks.quota]               # jobs (POST /tasks/...): per user; role_quota.<role> and
//! max_running = 2                  # user_quota.<name> tables override it
//! max_queued = 10
//! per_day = { backtest = 500, hyperopt = 50, download = 50, train = 20 }
//! [[edge.user]]                    # argon2 PHC hashes: `tradeflow edge hash-password`
//! name = "ops"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! role = "trader"                  # viewer < trader < admin
//! [[edge.api_key]]                 # machines: header X-API-Key
//! name = "grafana"
//! key_sha256 = "<hex sha-256 of the key>"
//! role = "viewer"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::Role;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `tradeflow data`'s datasets under its default data directory.
pub const DEFAULT_DATASETS_DIR: &str = "data/datasets";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    pub listen: String,
    /// Development mode: a random signing secret is made up when none is given.
    pub dev: bool,
    pub anonymous_read: bool,
    pub token_ttl_s: u64,
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    /// Name of the environment variable holding the JWT signing secret.
    pub jwt_secret_env: String,
    /// During a rotation, the variable holding the previous secret: tokens it signed stay
    /// valid until they expire (new ones are signed with the current secret).
    pub jwt_previous_secret_env: String,
    pub rate_limit: RateLimitConfig,
    pub ws: WsConfig,
    /// How long `/ai/analyze` answers are cached.
    pub ai_cache_ttl_s: u64,
    /// Exchanges asked by `GET /market/price/{symbol}` before the last candle (none by default).
    pub prices: tradeflow_exec::price::PriceSourcesConfig,
    /// The datasets the data routes list and delete (`<data-dir>/datasets` of `tradeflow data`;
    /// `tradeflow up` uses its own `--data-dir`'s when this is left as it is).
    pub datasets_dir: PathBuf,
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(rename = "api_key")]
    pub api_keys: Vec<ApiKeyConfig>,
    /// `[edge.tasks]`: job quotas.
    pub tasks: crate::quota::TasksConfig,
    /// Seconds between two measures of `tradeflow_model_live_hit_rate` from the store.
    pub models_refresh_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub read_per_minute: u32,
    pub write_per_minute: u32,
    pub auth_per_minute: u32,
    /// `/health`, `/ready`, `/metrics`: unauthenticated, so limited per address too (an
    /// orchestrator probing every second and Prometheus scraping use a few per minute).
    pub probe_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    pub client_queue: usize,
    pub status_interval_s: u64,
    pub heartbeat_s: u64,
    pub max_clients: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password_hash: String,
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub name: String,
    pub key_sha256: String,
    pub role: Role,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            listen: DEFAULT_LISTEN.into(),
            dev: false,
            anonymous_read: false,
            token_ttl_s: 3600,
            cors_origins: Vec::new(),
            body_limit_bytes: 1 << 20,
            jwt_secret_env: "TRADEFLOW_JWT_SECRET".into(),
            jwt_previous_secret_env: "TRADEFLOW_JWT_PREVIOUS_SECRET".into(),
            rate_limit: RateLimitConfig::default(),
            ws: WsConfig::default(),
            ai_cache_ttl_s: 300,
            prices: tradeflow_exec::price::PriceSourcesConfig::default(),
            datasets_dir: PathBuf::from(DEFAULT_DATASETS_DIR),
            users: Vec::new(),
            api_keys: Vec::new(),
            tasks: crate::quota::TasksConfig::default(),
            models_refresh_s: 60,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { read_per_minute: 6000, write_per_minute: 120, auth_per_minute: 10, probe_per_minute: 600 }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig { client_queue: 256, status_interval_s: 5, heartbeat_s: 15, max_clients: 10_000 }
    }
}

/// Every problem found in the `[edge]` configuration.
#[derive(Debug, thiserror::Error)]
#[error("edge configuration has {} problem(s):\n  {}", .problems.len(), .problems.join("\n  "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl EdgeConfig {
    /// Parses the `[edge]` table (absent = defaults), applies `TRADEFLOW_EDGE_LISTEN`, validates.
    pub fn from_toml(table: Option<toml::Value>) -> Result<EdgeConfig, ConfigError> {
        let mut config: EdgeConfig = match table {
            None => EdgeConfig::default(),
            Some(v) => v.try_into().map_err(|e: toml::de::Error| ConfigError {
                problems: vec![format!("edge: {}", e.message().trim())],
            })?,
        };
        if let Ok(listen) = std::env::var("TRADEFLOW_EDGE_LISTEN") {
            config.listen = listen;
        }
        config.validate()?;
        Ok(config)
    }

    /// The listen address (valid after [`validate`](Self::validate)).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// Checks everything and reports every problem with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!("edge.listen: expected host:port (e.g. {DEFAULT_LISTEN}), got {:?}", self.listen));
        }
        if !(60..=30 * 86_400).contains(&self.token_ttl_s) {
            p.push(format!("edge.token_ttl_s: expected 60 to 2592000, got {}", self.token_ttl_s));
        }
        // An analysis's expiry is the clock plus this: unbounded, it overflowed (a panic in the
        // handler) for values near TOML's largest integer.
        if self.ai_cache_ttl_s > 30 * 86_400 {
            p.push(format!("edge.ai_cache_ttl_s: expected at most 2592000 (30 days), got {}", self.ai_cache_ttl_s));
        }
        if !(1024..=64 << 20).contains(&self.body_limit_bytes) {
            p.push(format!("edge.body_limit_bytes: expected 1024 to 67108864, got {}", self.body_limit_bytes));
        }
        for o in &self.cors_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                p.push(format!("edge.cors_origins: {o:?} is neither \"*\" nor an http(s) origin"));
            }
        }
        if self.jwt_secret_env.is_empty() {
            p.push("edge.jwt_secret_env: must name an environment variable".into());
        }
        for (name, v) in [
            ("read_per_minute", self.rate_limit.read_per_minute),
            ("write_per_minute", self.rate_limit.write_per_minute),
            ("auth_per_minute", self.rate_limit.auth_per_minute),
            ("probe_per_minute", self.rate_limit.probe_per_minute),
        ] {
            if v == 0 {
                p.push(format!("edge.rate_limit.{name}: must be at least 1"));
            }
        }
        if !(1..=1 << 16).contains(&self.ws.client_queue) {
            p.push(format!("edge.ws.client_queue: expected 1 to 65536, got {}", self.ws.client_queue));
        }
        self.tasks.validate(&mut p);
        if !(1..=86_400).contains(&self.models_refresh_s) {
            p.push(format!("edge.models_refresh_s: expected 1 to 86400, got {}", self.models_refresh_s));
        }
        if self.ws.status_interval_s == 0 {
            p.push("edge.ws.status_interval_s: must be at least 1".into());
        }
        if self.ws.heartbeat_s == 0 {
            p.push("edge.ws.heartbeat_s: must be at least 1".into());
        }
        if self.ws.max_clients == 0 {
            p.push("edge.ws.max_clients: must be at least 1".into());
        }
        p.extend(self.prices.validate("edge.prices"));
        // Missing is fine (no dataset yet: the list is empty); anything else must be a directory.
        if self.datasets_dir.as_os_str().is_empty() {
            p.push("edge.datasets_dir: must name a directory".into());
        } else if self.datasets_dir.exists() && !self.datasets_dir.is_dir() {
            p.push(format!("edge.datasets_dir: {} is not a directory", self.datasets_dir.display()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() || u.name.len() > 64 {
                p.push(format!("edge.user[{i}].name: expected 1 to 64 characters"));
            }
            if !seen.insert(u.name.clone()) {
                p.push(format!("edge.user[{i}].name: {:?} is defined twice", u.name));
            }
            if let Err(e) = argon2::PasswordHash::new(&u.password_hash) {
                p.push(format!("edge.user[{i}].password_hash: not an argon2 PHC string ({e})"));
            }
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.name.is_empty() {
                p.push(format!("edge.api_key[{i}].name: must not be empty"));
            }
            if k.key_sha256.len() != 64 || hex::decode(&k.key_sha256).is_err() {
                p.push(format!("edge.api_key[{i}].key_sha256: expected 64 hex digits (sha-256 of the key)"));
            }
        }
        if p.is_empty() { Ok(()) } else { Err(ConfigError { problems: p }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let v: toml::Value = toml::from_str(
            r#"
            listen = "nowhere"
            token_ttl_s = 1
            datasets_dir = "Cargo.toml"
            cors_origins = ["ftp://x"]
            [rate_limit]
            write_per_minute = 0
            [ws]
            client_queue = 0
            [[user]]
            name = "a"
            password_hash = "plain"
            role = "admin"
            [[user]]
            name = "a"
            password_hash = "plain"
            role = "viewer"
            [[api_key]]
            name = "g"
            key_sha256 = "xyz"
            role = "viewer"
            "#,
        )
        .unwrap();
        let err = EdgeConfig::from_toml(Some(v)).unwrap_err();
        let text = err.to_string();
        for needle in [
            "edge.listen",
            "edge.token_ttl_s",
            "edge.cors_origins",
            "edge.rate_limit.write_per_minute",
            "edge.ws.client_queue",
            "edge.user[0].password_hash",
            "edge.user[1].name: \"a\" is defined twice",
            "edge.api_key[0].key_sha256",
            "edge.datasets_dir: Cargo.toml is not a directory",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(err.problems.len(), 10, "{text}");
    }

    /// Regression (issue #23): `ai_cache_ttl_s = 9223372036854775807` (TOML's largest integer)
    /// was accepted, and the first `POST /ai/analyze` then panicked ("overflow when adding
    /// duration to instant").
    #[test]
    fn an_ai_cache_ttl_past_30_days_is_refused() {
        let v: toml::Value = toml::from_str("ai_cache_ttl_s = 9223372036854775807").unwrap();
        let err = EdgeConfig::from_toml(Some(v)).unwrap_err().to_string();
        assert!(
            err.contains("edge.ai_cache_ttl_s: expected at most 2592000 (30 days), got 9223372036854775807"),
            "{err}"
        );
        let v: toml::Value = toml::from_str("ai_cache_ttl_s = 2592000").unwrap();
        assert_eq!(EdgeConfig::from_toml(Some(v)).unwrap().ai_cache_ttl_s, 2_592_000);
    }

    #[test]
    fn unknown_keys_and_roles_are_refused() {
        let v: toml::Value = toml::from_str("listn = \"x\"").unwrap();
        assert!(EdgeConfig::from_toml(Some(v)).unwrap_err().to_string().contains("listn"));
        let v: toml::Value = toml::from_str("[[user]]\nname = \"a\"\npassword_hash = \"x\"\nrole = \"god\"").unwrap();
        assert!(EdgeConfig::from_toml(Some(v)).unwrap_err().to_string().contains("god"));
    }

    #[test]
    fn defaults_are_valid() {
        EdgeConfig::default().validate().unwrap();
    }
}
