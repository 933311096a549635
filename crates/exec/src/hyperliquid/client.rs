//! [`HyperliquidClient`]: signed actions to `/exchange`, queries to `/info`, retries,
//! idempotent placement.
//!
//! # Actions
//! Each action is signed (see [`super::signing`]) with a fresh nonce, the current time in ms
//! kept strictly increasing (Hyperliquid keeps the highest nonces per signer and refuses one
//! used before or far from its clock), and posted as `{action, nonce, signature, vaultAddress,
//! expiresAfter}`. A retried action is signed anew.
//!
//! # Retries
//! 5xx and 408 answers, timeouts and connection errors are retried up to `max_retries` times
//! after an exponential backoff; 429 (rate limited: Hyperliquid refuses before acting) too.
//! A refusal (`{"status": "err"}`, an order's `{"error": …}`) is returned at once.
//!
//! # Idempotent placement
//! Every order carries a `cloid` derived from the caller's id ([`cloid`]). Placing first asks
//! `/info orderStatus` for that cloid, and again after any failure whose outcome is unknown: an
//! order Hyperliquid has is the answer (with its fills), and only an `unknownOid` is posted
//! (again). So a redelivered or retried order is never placed twice. Market orders are IOC
//! limit orders at the mid price ± `slippage` (as the SDK's `market_open`), rounded to the
//! asset's 5 significant figures and `6 − szDecimals` decimals; sizes to `szDecimals`.
//!
//! The key is never logged nor put in an error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tracing::{debug, warn};
use tradeflow_net::http::{backoff, clip, error_chain};
use tradeflow_net::tls;

use super::config::HyperliquidConfig;
use super::error::HyperliquidError;
use super::signing::{Address, Signer, cloid};
use super::wire::{
    Action, AssetMeta, CancelByCloidWire, CancelWire, ExchangeRequest, LimitWire, Meta, OrderInfo, OrderStatusInfo,
    OrderTypeWire, OrderWire, TriggerWire, UserFill, float_to_wire, parse_all_mids, round_price, round_size,
};

/// Milliseconds since the Unix epoch, for nonces.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How an order executes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderKind {
    /// Now, at the mid price (`/info allMids`) ± `slippage` at worst: an IOC limit order.
    Market,
    /// A resting limit order (`Gtc`).
    Limit { px: f64 },
    /// A trigger order executing at market when the mark price reaches `trigger_px`: a stop
    /// loss (`sl`) or take profit (`tp`); its limit is `trigger_px` ± `slippage`.
    Trigger { trigger_px: f64, tpsl: Tpsl },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tpsl {
    StopLoss,
    TakeProfit,
}

impl Tpsl {
    fn as_str(self) -> &'static str {
        match self {
            Self::StopLoss => "sl",
            Self::TakeProfit => "tp",
        }
    }
}

/// An order to place.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub coin: String,
    pub is_buy: bool,
    /// Rounded to the asset's `szDecimals` before sending.
    pub size: f64,
    pub kind: OrderKind,
    pub reduce_only: bool,
    /// The caller's id; the `cloid` sent is [`cloid`] of it.
    pub id: String,
}

/// What Hyperliquid has of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderAck {
    pub oid: u64,
    pub cloid: String,
    /// Hyperliquid's order status: `open`, `filled`, `canceled`, `triggered`, `rejected`, …
    pub status: String,
    /// Size filled so far.
    pub filled: f64,
    /// Average fill price, when anything filled.
    pub avg_px: Option<f64>,
    /// Time of the last fill, or of the status (ms).
    pub time: i64,
}

impl OrderAck {
    /// Waiting on the book or for its trigger.
    pub fn is_open(&self) -> bool {
        self.status == "open"
    }
}

/// One open perpetual position of `clearinghouseState`.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub coin: String,
    /// Signed size: positive long, negative short.
    pub size: f64,
    pub entry_px: Option<f64>,
    pub unrealized_pnl: f64,
    pub leverage: Option<f64>,
}

/// Balances and positions of the traded account (`clearinghouseState`).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountState {
    pub account_value: f64,
    pub margin_used: f64,
    pub withdrawable: f64,
    pub positions: Vec<Position>,
}

/// A signed client for Hyperliquid perpetuals. Cheap to clone (connection pool, nonce and
/// asset metadata are shared). `Debug` shows the configuration and the signer's address only.
#[derive(Clone)]
pub struct HyperliquidClient {
    http: reqwest::Client,
    base: String,
    config: HyperliquidConfig,
    signer: Signer,
    /// Whose state `/info` is asked about: the vault, the configured account, or the signer.
    user: Address,
    vault: Option<Address>,
    last_nonce: Arc<AtomicU64>,
    clock: Clock,
    meta: Arc<Mutex<Option<Arc<Meta>>>>,
}

/// How one attempt ended.
enum Attempt {
    Done(Value),
    /// `not_sent`: Hyperliquid certainly did not act on it (429, or no connection made).
    Retry {
        error: HyperliquidError,
        not_sent: bool,
    },
    Fail(HyperliquidError),
}

impl HyperliquidClient {
    /// Validates `config` and reads the signing key from the variable it names.
    pub fn new(config: &HyperliquidConfig) -> Result<Self, HyperliquidError> {
        config.validate().map_err(HyperliquidError::Config)?;
        let key = match std::env::var(&config.key_env) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => return Err(HyperliquidError::MissingKey { var: config.key_env.clone() }),
        };
        Self::with_signer(config, Signer::from_hex(&key)?)
    }

    /// Like [`HyperliquidClient::new`] with a key from elsewhere (tests, a secret store).
    pub fn with_signer(config: &HyperliquidConfig, signer: Signer) -> Result<Self, HyperliquidError> {
        config.validate().map_err(HyperliquidError::Config)?;
        let parse = |v: &Option<String>| v.as_deref().map(Address::parse).transpose();
        let vault =
            parse(&config.vault_address).map_err(|e| HyperliquidError::Config(vec![format!("vault_address: {e}")]))?;
        let account = parse(&config.account_address)
            .map_err(|e| HyperliquidError::Config(vec![format!("account_address: {e}")]))?;
        let user = vault.or(account).unwrap_or_else(|| signer.address());
        let tls = tls::client_config().map_err(HyperliquidError::Client)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HyperliquidError::Client(error_chain(&e.without_url())))?;
        Ok(Self {
            http,
            base: config.effective_base_url().to_string(),
            config: config.clone(),
            signer,
            user,
            vault,
            last_nonce: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(tradeflow_core::time::now_ms),
            meta: Arc::new(Mutex::new(None)),
        })
    }

    /// The same client with another clock for nonces (ms since the epoch).
    pub fn with_clock(self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self { clock: Arc::new(clock), ..self }
    }

    pub fn config(&self) -> &HyperliquidConfig {
        &self.config
    }

    /// The account whose state is read.
    pub fn user(&self) -> Address {
        self.user
    }

    /// The signing key's address.
    pub fn signer_address(&self) -> Address {
        self.signer.address()
    }

    /// A nonce above every earlier one: now in ms, or the last one + 1.
    fn next_nonce(&self) -> u64 {
        let now = u64::try_from((self.clock)()).unwrap_or(0);
        let mut last = self.last_nonce.load(Ordering::SeqCst);
        loop {
            let next = now.max(last + 1);
            match self.last_nonce.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // /info

    /// `meta`: the perpetuals, cached after the first call (refreshed once when a coin is
    /// missing from it).
    pub async fn meta(&self) -> Result<Arc<Meta>, HyperliquidError> {
        if let Some(m) = self.cached_meta() {
            return Ok(m);
        }
        self.refresh_meta().await
    }

    fn cached_meta(&self) -> Option<Arc<Meta>> {
        self.meta.lock().ok().and_then(|m| m.clone())
    }

    async fn refresh_meta(&self) -> Result<Arc<Meta>, HyperliquidError> {
        let body = self.info(json!({"type": "meta"})).await?;
        let meta: Meta = serde_json::from_value(body).map_err(|e| HyperliquidError::decode("meta", e.to_string()))?;
        let meta = Arc::new(meta);
        if let Ok(mut slot) = self.meta.lock() {
            *slot = Some(meta.clone());
        }
        Ok(meta)
    }

    /// The asset number of `coin` (its index in `meta.universe`) and its metadata.
    pub async fn asset(&self, coin: &str) -> Result<(u32, AssetMeta), HyperliquidError> {
        let find = |m: &Meta| m.universe.iter().position(|a| a.name == coin).map(|i| (i as u32, m.universe[i].clone()));
        if let Some(found) = find(&*self.meta().await?) {
            return Ok(found);
        }
        find(&*self.refresh_meta().await?).ok_or_else(|| HyperliquidError::UnknownCoin { coin: coin.to_string() })
    }

    /// `allMids`: the mid price of every coin.
    pub async fn all_mids(&self) -> Result<BTreeMap<String, f64>, HyperliquidError> {
        parse_all_mids(&self.info(json!({"type": "allMids"})).await?)
    }

    /// The mid price of `coin`.
    pub async fn mid(&self, coin: &str) -> Result<f64, HyperliquidError> {
        self.all_mids()
            .await?
            .get(coin)
            .copied()
            .filter(|p| *p > 0.0)
            .ok_or_else(|| HyperliquidError::UnknownCoin { coin: coin.to_string() })
    }

    /// `orderStatus` by the caller's id (through [`cloid`]) or by a cloid; `None` for
    /// `unknownOid`.
    pub async fn order_status(&self, id: &str) -> Result<Option<OrderStatusInfo>, HyperliquidError> {
        let body = self.info(json!({"type": "orderStatus", "user": self.user.to_string(), "oid": cloid(id)})).await?;
        match body.get("status").and_then(Value::as_str) {
            Some("unknownOid") => Ok(None),
            Some("order") => {
                let order = body.get("order").cloned().unwrap_or(Value::Null);
                serde_json::from_value(order)
                    .map(Some)
                    .map_err(|e| HyperliquidError::decode("orderStatus.order", e.to_string()))
            }
            _ => Err(HyperliquidError::decode("orderStatus.status", clip(&body.to_string(), 200))),
        }
    }

    /// The fills of order `oid` among the account's latest fills (`userFills`, Hyperliquid's
    /// most recent 2000).
    pub async fn fills_of(&self, oid: u64) -> Result<Vec<UserFill>, HyperliquidError> {
        let body = self.info(json!({"type": "userFills", "user": self.user.to_string()})).await?;
        let fills: Vec<UserFill> =
            serde_json::from_value(body).map_err(|e| HyperliquidError::decode("userFills", e.to_string()))?;
        Ok(fills.into_iter().filter(|f| f.oid == oid).collect())
    }

    /// `frontendOpenOrders`: the account's open orders, trigger orders included, with cloids.
    pub async fn open_orders(&self) -> Result<Vec<OrderInfo>, HyperliquidError> {
        let body = self.info(json!({"type": "frontendOpenOrders", "user": self.user.to_string()})).await?;
        serde_json::from_value(body).map_err(|e| HyperliquidError::decode("frontendOpenOrders", e.to_string()))
    }

    /// `clearinghouseState`: balances and positions.
    pub async fn account_state(&self) -> Result<AccountState, HyperliquidError> {
        let body = self.info(json!({"type": "clearinghouseState", "user": self.user.to_string()})).await?;
        let summary = body.get("marginSummary").unwrap_or(&Value::Null);
        let field = |v: &Value, name: &str, path: &str| number(v.get(name).unwrap_or(&Value::Null), path);
        let mut positions = Vec::new();
        for (i, p) in body.get("assetPositions").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let pos = p.get("position").unwrap_or(&Value::Null);
            let path = format!("assetPositions[{i}].position");
            positions.push(Position {
                coin: pos.get("coin").and_then(Value::as_str).unwrap_or_default().to_string(),
                size: field(pos, "szi", &format!("{path}.szi"))?,
                entry_px: pos.get("entryPx").and_then(|v| number(v, "entryPx").ok()),
                unrealized_pnl: field(pos, "unrealizedPnl", &format!("{path}.unrealizedPnl")).unwrap_or(0.0),
                leverage: pos.get("leverage").and_then(|l| l.get("value")).and_then(|v| number(v, "leverage").ok()),
            });
        }
        Ok(AccountState {
            account_value: field(summary, "accountValue", "marginSummary.accountValue")?,
            margin_used: field(summary, "totalMarginUsed", "marginSummary.totalMarginUsed")?,
            withdrawable: field(&body, "withdrawable", "withdrawable")?,
            positions,
        })
    }

    // -----------------------------------------------------------------------------------------
    // /exchange

    /// `updateLeverage` of `coin` (cross or isolated by the configuration).
    pub async fn set_leverage(&self, coin: &str, leverage: u32) -> Result<(), HyperliquidError> {
        if leverage == 0 {
            return Err(HyperliquidError::InvalidRequest("leverage: must be at least 1".into()));
        }
        let (asset, meta) = self.asset(coin).await?;
        if let Some(max) = meta.max_leverage
            && leverage > max
        {
            return Err(HyperliquidError::InvalidRequest(format!("leverage: {leverage} is above {coin}'s {max}")));
        }
        let action = Action::UpdateLeverage { asset, is_cross: self.config.cross_margin, leverage };
        self.action(&action).await.map(|_| ())
    }

    /// Places `order`, idempotent by its cloid (see the module documentation).
    pub async fn place_order(&self, order: &NewOrder) -> Result<OrderAck, HyperliquidError> {
        let cloid = cloid(&order.id);
        let action = Action::order(self.order_wire(order, &cloid).await?);
        let mut failures = 0u32;
        let mut check_first = true;
        loop {
            if check_first && let Some(ack) = self.lookup(&cloid).await? {
                debug!(cloid, status = %ack.status, "order already at Hyperliquid");
                return Ok(ack);
            }
            match self.attempt_action(&action).await {
                Attempt::Done(body) => return self.order_answer(&body, &cloid).await,
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, not_sent } => {
                    self.after_failure(&mut failures, error, "/exchange").await?;
                    check_first = check_first || !not_sent;
                }
            }
        }
    }

    /// `cancelByCloid`: true when it was open and is cancelled now, false when Hyperliquid has
    /// no open order with that cloid (filled, cancelled, triggered or never placed).
    pub async fn cancel_by_cloid(&self, coin: &str, id: &str) -> Result<bool, HyperliquidError> {
        let (asset, _) = self.asset(coin).await?;
        let action = Action::CancelByCloid { cancels: vec![CancelByCloidWire { asset, cloid: cloid(id) }] };
        cancel_answer(&self.action(&action).await?)
    }

    /// `cancel` by Hyperliquid's order id; true when it was open and is cancelled now.
    pub async fn cancel(&self, coin: &str, oid: u64) -> Result<bool, HyperliquidError> {
        let (asset, _) = self.asset(coin).await?;
        let action = Action::Cancel { cancels: vec![CancelWire { a: asset, o: oid }] };
        cancel_answer(&self.action(&action).await?)
    }

    /// What Hyperliquid has of the order with `cloid`, with its fills; `None` when unknown.
    async fn lookup(&self, cloid: &str) -> Result<Option<OrderAck>, HyperliquidError> {
        let Some(info) = self.order_status(cloid).await? else { return Ok(None) };
        self.ack_of(info).await.map(Some)
    }

    /// An order's status with its fills summed.
    pub async fn ack_of(&self, info: OrderStatusInfo) -> Result<OrderAck, HyperliquidError> {
        let oid = info.order.oid;
        let fills = if info.status == "open" && info.order.orig_sz.as_deref() == Some(info.order.sz.as_str()) {
            Vec::new()
        } else {
            self.fills_of(oid).await?
        };
        let (filled, avg_px, last) = sum_fills(&fills)?;
        Ok(OrderAck {
            oid,
            cloid: info.order.cloid.clone().unwrap_or_default(),
            status: info.status,
            filled,
            avg_px,
            time: last.unwrap_or(info.status_timestamp),
        })
    }

    /// The wire form of `order`: sizes and prices rounded to the asset's precision.
    async fn order_wire(&self, order: &NewOrder, cloid: &str) -> Result<OrderWire, HyperliquidError> {
        let (asset, meta) = self.asset(&order.coin).await?;
        let size = round_size(order.size, meta.sz_decimals);
        if size.is_nan() || size <= 0.0 {
            return Err(HyperliquidError::InvalidRequest(format!(
                "size: {} rounds to 0 at {}'s {} decimals",
                order.size, order.coin, meta.sz_decimals
            )));
        }
        let slip =
            |px: f64| if order.is_buy { px * (1.0 + self.config.slippage) } else { px * (1.0 - self.config.slippage) };
        let (px, t) = match order.kind {
            OrderKind::Market => {
                let mid = self.mid(&order.coin).await?;
                (
                    round_price(slip(mid), meta.sz_decimals),
                    OrderTypeWire { limit: Some(LimitWire { tif: "Ioc".into() }), trigger: None },
                )
            }
            OrderKind::Limit { px } => (
                round_price(px, meta.sz_decimals),
                OrderTypeWire { limit: Some(LimitWire { tif: "Gtc".into() }), trigger: None },
            ),
            OrderKind::Trigger { trigger_px, tpsl } => {
                let trigger = round_price(trigger_px, meta.sz_decimals);
                let wire =
                    TriggerWire { is_market: true, trigger_px: float_to_wire(trigger)?, tpsl: tpsl.as_str().into() };
                (round_price(slip(trigger), meta.sz_decimals), OrderTypeWire { limit: None, trigger: Some(wire) })
            }
        };
        Ok(OrderWire {
            a: asset,
            b: order.is_buy,
            p: float_to_wire(px)?,
            s: float_to_wire(size)?,
            r: order.reduce_only,
            t,
            c: Some(cloid.to_string()),
        })
    }

    /// The first status of an order action's answer.
    async fn order_answer(&self, body: &Value, cloid: &str) -> Result<OrderAck, HyperliquidError> {
        let status = body
            .pointer("/response/data/statuses/0")
            .ok_or_else(|| HyperliquidError::decode("response.data.statuses", clip(&body.to_string(), 200)))?;
        let now = (self.clock)();
        if let Some(f) = status.get("filled") {
            let oid = f
                .get("oid")
                .and_then(Value::as_u64)
                .ok_or_else(|| HyperliquidError::decode("filled.oid", "missing"))?;
            return Ok(OrderAck {
                oid,
                cloid: cloid.to_string(),
                status: "filled".into(),
                filled: number(f.get("totalSz").unwrap_or(&Value::Null), "filled.totalSz")?,
                avg_px: Some(number(f.get("avgPx").unwrap_or(&Value::Null), "filled.avgPx")?),
                time: now,
            });
        }
        if let Some(r) = status.get("resting") {
            let oid = r
                .get("oid")
                .and_then(Value::as_u64)
                .ok_or_else(|| HyperliquidError::decode("resting.oid", "missing"))?;
            return Ok(OrderAck {
                oid,
                cloid: cloid.to_string(),
                status: "open".into(),
                filled: 0.0,
                avg_px: None,
                time: now,
            });
        }
        if let Some(e) = status.get("error") {
            return Err(HyperliquidError::Refused(clip(e.as_str().unwrap_or(&e.to_string()), 200)));
        }
        // "waitingForTrigger", "waitingForFill", "success": accepted without its oid; read it.
        self.lookup(cloid)
            .await?
            .ok_or_else(|| HyperliquidError::decode("statuses[0]", format!("{status} and no order with cloid {cloid}")))
    }

    /// Signs and posts `action` with retries; a refusal is [`HyperliquidError::Refused`].
    async fn action(&self, action: &Action) -> Result<Value, HyperliquidError> {
        let mut failures = 0u32;
        loop {
            match self.attempt_action(action).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, .. } => self.after_failure(&mut failures, error, "/exchange").await?,
            }
        }
    }

    async fn attempt_action(&self, action: &Action) -> Attempt {
        let nonce = self.next_nonce();
        let signature = match self.signer.sign_l1_action(action, self.vault.as_ref(), nonce, None, !self.config.testnet)
        {
            Ok(s) => s,
            Err(e) => return Attempt::Fail(e),
        };
        let request = ExchangeRequest {
            action: action.clone(),
            nonce,
            signature,
            vault_address: self.vault.map(|v| v.to_string()),
            expires_after: None,
        };
        let body = match serde_json::to_value(&request) {
            Ok(b) => b,
            Err(e) => return Attempt::Fail(HyperliquidError::Signing(format!("request JSON: {e}"))),
        };
        match self.attempt("/exchange", &body).await {
            Attempt::Done(answer) => match answer.get("status").and_then(Value::as_str) {
                Some("ok") => Attempt::Done(answer),
                _ => {
                    let msg = answer.get("response").map_or_else(
                        || answer.to_string(),
                        |r| r.as_str().map_or_else(|| r.to_string(), str::to_string),
                    );
                    Attempt::Fail(HyperliquidError::Refused(clip(&msg, 200)))
                }
            },
            other => other,
        }
    }

    /// An `/info` query with retries.
    async fn info(&self, body: Value) -> Result<Value, HyperliquidError> {
        let mut failures = 0u32;
        loop {
            match self.attempt("/info", &body).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, .. } => self.after_failure(&mut failures, error, "/info").await?,
            }
        }
    }

    async fn after_failure(
        &self,
        failures: &mut u32,
        error: HyperliquidError,
        path: &str,
    ) -> Result<(), HyperliquidError> {
        *failures += 1;
        if *failures > self.config.max_retries {
            warn!(path, attempts = *failures, %error, "Hyperliquid request failed; giving up");
            return Err(HyperliquidError::RetriesExhausted { attempts: *failures, last: Box::new(error) });
        }
        let wait = backoff(self.config.backoff_initial, self.config.backoff_max, *failures - 1);
        warn!(path, attempt = *failures, ?wait, %error, "Hyperliquid request failed; retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// One POST of JSON.
    async fn attempt(&self, path: &str, body: &Value) -> Attempt {
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return self.transport_failure(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        if status.is_success() {
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => Attempt::Done(v),
                Err(e) => {
                    Attempt::Fail(HyperliquidError::decode("body", format!("not JSON ({e}): {}", clip(&text, 200))))
                }
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Attempt::Retry { error: HyperliquidError::RateLimited, not_sent: true };
        }
        let error = HyperliquidError::Http { status: status.as_u16(), body: clip(&text, 200) };
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            Attempt::Retry { error, not_sent: false }
        } else {
            Attempt::Fail(error)
        }
    }

    fn transport_failure(&self, e: reqwest::Error) -> Attempt {
        let e = e.without_url();
        if e.is_builder() || e.is_redirect() {
            return Attempt::Fail(HyperliquidError::Transport(error_chain(&e)));
        }
        let not_sent = e.is_connect();
        let error = if e.is_timeout() {
            HyperliquidError::Timeout { after: self.config.timeout }
        } else {
            HyperliquidError::Transport(error_chain(&e))
        };
        Attempt::Retry { error, not_sent }
    }
}

impl fmt::Debug for HyperliquidClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperliquidClient")
            .field("base", &self.base)
            .field("config", &self.config)
            .field("signer", &self.signer)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A decimal string (or a JSON number).
fn number(v: &Value, path: &str) -> Result<f64, HyperliquidError> {
    let x = match v {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    x.filter(|x| x.is_finite()).ok_or_else(|| HyperliquidError::decode(path, format!("{v} is not a number")))
}

/// Size filled, volume-weighted average price and last fill time of `fills`.
fn sum_fills(fills: &[UserFill]) -> Result<(f64, Option<f64>, Option<i64>), HyperliquidError> {
    let (mut size, mut notional, mut last) = (0.0, 0.0, None::<i64>);
    for f in fills {
        let sz = number(&Value::String(f.sz.clone()), "userFills.sz")?;
        let px = number(&Value::String(f.px.clone()), "userFills.px")?;
        size += sz;
        notional += sz * px;
        last = Some(last.map_or(f.time, |t| t.max(f.time)));
    }
    Ok((size, (size > 0.0).then(|| notional / size), last))
}

/// A cancel's first status: `"success"` is true, an error saying it is not open is false.
fn cancel_answer(body: &Value) -> Result<bool, HyperliquidError> {
    let status = body
        .pointer("/response/data/statuses/0")
        .ok_or_else(|| HyperliquidError::decode("response.data.statuses", clip(&body.to_string(), 200)))?;
    if status.as_str() == Some("success") {
        return Ok(true);
    }
    match status.get("error").and_then(Value::as_str) {
        // "Order was never placed, already canceled, or filled."
        Some(_) => Ok(false),
        None => Err(HyperliquidError::decode("statuses[0]", clip(&status.to_string(), 200))),
    }
}
