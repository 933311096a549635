//! [`FuturesClient`]: signed requests to Binance USDⓈ-M futures, retries, idempotent placement.
//!
//! # Signing
//! Every request is `SIGNED`: its parameters, then `recvWindow` and `timestamp` (ms, from the
//! client's clock), form-encoded into the query string; then `signature`, the HMAC-SHA256 of that
//! query string (see [`sign`]), appended as the last parameter. The API key goes in the
//! `X-MBX-APIKEY` header. **All parameters travel in the query string, for POST too; the body is
//! always empty**, which Binance accepts for every method, so the signed `totalParams` is exactly
//! the query string as sent. Each attempt is signed anew with a fresh timestamp.
//!
//! # Retries
//! Retried, up to `max_retries` times: 5xx and 408 answers, timeouts and connection errors
//! (after an exponential backoff, `backoff_initial · 2^n` up to `backoff_max`), and 429/418
//! (after their `Retry-After` seconds, at most [`MAX_RETRY_AFTER`]; without the header, the
//! backoff). Any other 4xx is returned at once, typed by Binance's code ([`FuturesError`]).
//!
//! # Idempotent placement
//! A POST that timed out, failed on the connection or got a 5xx may have placed the order. So
//! [`FuturesClient::place_order`] never re-POSTs blindly: after the backoff it first asks for the
//! order by its client order id. If Binance has it, that is the answer; if Binance says -2013
//! (does not exist), the POST is sent again with the *same* `newClientOrderId`. If a POST is
//! refused as a duplicate (-4116: an open order has that id), the existing order is fetched and
//! returned. A POST that certainly did not arrive is re-sent directly, without the lookup: a 429/418
//! (Binance refuses those before they reach its matching engine) after its wait, and a connection
//! that could not be made at all.
//!
//! The same loop places conditional orders through the Algo Order API, keyed by `clientAlgoId`
//! (see [`super::algo`]); [`FuturesClient::resume_algo_order`] looks before the first POST too,
//! for a caller whose earlier call ended without a known outcome.
//!
//! Binance keeps client order ids unique among *open* orders only; the check-first rule is what
//! keeps a filled MARKET order from being placed twice. One race remains, inherent to the API: an
//! order still in flight inside Binance when the check runs (Binance answered 5xx/-1007 "execution
//! status unknown" before its matching engine did) is reported as absent.
//!
//! Secrets: the API key and secret are never logged nor put in an error; reqwest errors are
//! stripped of their URL (whose query holds the signature) before they are kept.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::{debug, warn};
use tradeflow_net::http::{backoff, retry_after};
use tradeflow_net::tls;

use super::config::{Credentials, FuturesConfig};
use super::error::{FuturesError, clip, error_chain};
use super::sign::{client_order_id, sign};
use super::types::{MarginType, NewOrder, OrderAck, int_field, normalize_symbol};

/// The API key header.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";
/// Longest `Retry-After` waited for; a longer one (a 418 ban lasts minutes to days) ends the call.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

const ORDER: &str = "/fapi/v1/order";
const LEVERAGE: &str = "/fapi/v1/leverage";
const MARGIN_TYPE: &str = "/fapi/v1/marginType";

/// Binance's "Unknown order sent.": a cancel of an order that is not open (any more).
pub(super) const UNKNOWN_ORDER: i64 = -2011;

/// Binance's "No need to change margin type.": the symbol already has the margin type asked for.
const NO_NEED_TO_CHANGE_MARGIN_TYPE: i64 = -4046;

/// Milliseconds since the Unix epoch, for `timestamp`.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A signed REST client for Binance USDⓈ-M futures. Cheap to clone (the connection pool is
/// shared). `Debug` shows the configuration and `***` for the credentials.
#[derive(Clone)]
pub struct FuturesClient {
    http: reqwest::Client,
    base: String,
    config: FuturesConfig,
    credentials: Credentials,
    /// `credentials.api_key` as a header value marked sensitive.
    api_key_header: HeaderValue,
    clock: Clock,
}

/// How one attempt ended.
enum Attempt {
    /// A 2xx answer's JSON body.
    Done(Value),
    /// Worth another try; `wait` overrides the backoff (429/418 `Retry-After`); `not_sent`: the
    /// request certainly did not reach Binance's engine (a 429/418, or no connection was made).
    Retry { error: FuturesError, wait: Option<Duration>, not_sent: bool },
    /// Final.
    Fail(FuturesError),
}

impl FuturesClient {
    /// Validates `config` and reads the credentials from the environment variables it names.
    pub fn new(config: &FuturesConfig) -> Result<Self, FuturesError> {
        config.validate().map_err(FuturesError::Config)?;
        let credentials = Credentials::from_env(&config.api_key_env, &config.secret_env)?;
        Self::with_credentials(config, credentials)
    }

    /// Like [`FuturesClient::new`] with credentials from elsewhere (a secret store, tests);
    /// `api_key_env` and `secret_env` are not read.
    pub fn with_credentials(config: &FuturesConfig, credentials: Credentials) -> Result<Self, FuturesError> {
        config.validate().map_err(FuturesError::Config)?;
        let mut api_key_header = HeaderValue::from_str(&credentials.api_key).map_err(|_| {
            FuturesError::Config(vec![format!(
                "api key (from {}): contains characters not allowed in an HTTP header",
                config.api_key_env
            )])
        })?;
        api_key_header.set_sensitive(true);
        let tls = tls::client_config().map_err(FuturesError::Client)?;
        let http = reqwest::Client::builder()
            // reqwest downcasts the `rustls::ClientConfig` itself, not an `Arc` of it.
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FuturesError::Client(error_chain(&e.without_url())))?;
        Ok(Self {
            http,
            base: config.effective_base_url().to_string(),
            config: config.clone(),
            credentials,
            api_key_header,
            clock: Arc::new(tradeflow_core::time::now_ms),
        })
    }

    /// The same client with another clock for `timestamp` (ms since the epoch), e.g. one
    /// corrected by the offset to Binance's server time, or a fixed one in tests.
    pub fn with_clock(self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self { clock: Arc::new(clock), ..self }
    }

    pub fn config(&self) -> &FuturesConfig {
        &self.config
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /fapi/v1/leverage`: sets the initial leverage of `symbol`; returns the leverage
    /// Binance confirms. Binance refuses a leverage above the symbol's bracket with -4028.
    pub async fn set_leverage(&self, symbol: &str, leverage: u32) -> Result<u32, FuturesError> {
        let symbol = normalize_symbol(symbol)?;
        if leverage == 0 {
            return Err(FuturesError::InvalidRequest("leverage: must be at least 1".into()));
        }
        let params = [("symbol", symbol), ("leverage", leverage.to_string())];
        let body = self.call(Method::POST, LEVERAGE, &params).await?;
        let confirmed = int_field(&body, "leverage")?;
        u32::try_from(confirmed).map_err(|_| FuturesError::Decode {
            field: "leverage".into(),
            reason: format!("{confirmed} is out of range"),
        })
    }

    /// `POST /fapi/v1/marginType`. Already having that margin type (-4046 "No need to change
    /// margin type.") counts as success.
    pub async fn set_margin_type(&self, symbol: &str, margin_type: MarginType) -> Result<(), FuturesError> {
        let symbol = normalize_symbol(symbol)?;
        let params = [("symbol", symbol), ("marginType", margin_type.as_str().to_string())];
        match self.call(Method::POST, MARGIN_TYPE, &params).await {
            Ok(_) => Ok(()),
            Err(FuturesError::Api { code: NO_NEED_TO_CHANGE_MARGIN_TYPE, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /fapi/v1/order` by Binance's order id: how the order a triggered algo order became
    /// is read (its `actualOrderId`).
    pub async fn query_order_by_id(&self, symbol: &str, order_id: i64) -> Result<OrderAck, FuturesError> {
        let params = [("symbol", normalize_symbol(symbol)?), ("orderId", order_id.to_string())];
        let body = self.call(Method::GET, ORDER, &params).await?;
        OrderAck::from_json(&body)
    }

    /// `GET /fapi/v1/order` by client order id. `client_order_id` may be the caller's id or the
    /// id sent (they map to the same, see [`client_order_id`]). An unknown order is
    /// [`FuturesError::OrderNotFound`].
    pub async fn query_order(&self, symbol: &str, client_order_id: &str) -> Result<OrderAck, FuturesError> {
        let params = query_params(symbol, client_order_id)?;
        let body = self.call(Method::GET, ORDER, &params).await?;
        OrderAck::from_json(&body)
    }

    /// `DELETE /fapi/v1/order` by client order id. `Ok(None)` when Binance has no open order
    /// with that id (-2011 "Unknown order sent." or -2013): it was filled, cancelled or never
    /// placed; query it to know which. Cancelling twice is therefore harmless, and so is a retry.
    pub async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<Option<OrderAck>, FuturesError> {
        let params = query_params(symbol, client_order_id)?;
        match self.call(Method::DELETE, ORDER, &params).await {
            Ok(body) => OrderAck::from_json(&body).map(Some),
            Err(FuturesError::OrderNotFound { .. }) | Err(FuturesError::Api { code: UNKNOWN_ORDER, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /fapi/v1/order` (`newOrderRespType=RESULT`), idempotent by the order's client id:
    /// whatever fails and is retried, at most one order with that id is placed (see the module
    /// documentation). After [`FuturesError::RetriesExhausted`] whose
    /// [`FuturesError::outcome_unknown`] is true the order may exist: query it by the same id.
    pub async fn place_order(&self, order: &NewOrder) -> Result<OrderAck, FuturesError> {
        let cid = client_order_id(&order.client_order_id);
        let params = order.params(&cid)?;
        let lookup = query_params(&order.symbol, &cid)?;
        let body = self.place_idempotent(ORDER, &params, ORDER, &lookup, &cid, false).await?;
        OrderAck::from_json(&body)
    }

    /// The check-first placement loop shared by plain and algo orders: POST `params` to `post`;
    /// after a failure that may have placed it, GET `lookup` from `get` first and POST again only
    /// on -2013 (does not exist); a duplicate refusal fetches the existing one. `look_first`: a
    /// previous call's outcome is unknown, so look before the first POST too.
    pub(super) async fn place_idempotent(
        &self,
        post: &str,
        params: &[(&str, String)],
        get: &str,
        lookup: &[(&str, String)],
        id: &str,
        look_first: bool,
    ) -> Result<Value, FuturesError> {
        let mut failures = 0u32;
        // Set after a failure that may have placed the order: look before posting again.
        let mut check_first = look_first;
        loop {
            if check_first {
                match self.attempt(Method::GET, get, lookup).await {
                    Attempt::Done(body) => return Ok(body),
                    Attempt::Fail(FuturesError::OrderNotFound { .. }) => {
                        debug!(client_id = %id, path = post, "order not at Binance; posting it");
                    }
                    Attempt::Fail(e) => return Err(e),
                    Attempt::Retry { error, wait, .. } => {
                        self.after_failure(&mut failures, error, wait, "GET", get).await?;
                        continue;
                    }
                }
            }
            match self.attempt(Method::POST, post, params).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(FuturesError::DuplicateClientOrderId { .. }) => {
                    debug!(client_id = %id, path = post, "Binance has an open order with this client id; fetching it");
                    return self.call(Method::GET, get, lookup).await;
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, wait, not_sent } => {
                    self.after_failure(&mut failures, error, wait, "POST", post).await?;
                    check_first = !not_sent;
                }
            }
        }
    }

    /// A signed request with retries, for requests that may be repeated as they are (GET, and
    /// the setting POSTs, which set the same value again).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Value, FuturesError> {
        let mut failures = 0u32;
        loop {
            match self.attempt(method.clone(), path, params).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, wait, .. } => {
                    self.after_failure(&mut failures, error, wait, method.as_str(), path).await?;
                }
            }
        }
    }

    /// Counts a retryable failure; gives up once `max_retries` retries were spent, else waits
    /// (`wait`, or the backoff) before the caller's next attempt.
    async fn after_failure(
        &self,
        failures: &mut u32,
        error: FuturesError,
        wait: Option<Duration>,
        method: &str,
        path: &str,
    ) -> Result<(), FuturesError> {
        *failures += 1;
        if *failures > self.config.max_retries {
            warn!(method, path, attempts = *failures, %error, "Binance request failed; giving up");
            return Err(FuturesError::RetriesExhausted { attempts: *failures, last: Box::new(error) });
        }
        let wait = wait.unwrap_or_else(|| backoff(self.config.backoff_initial, self.config.backoff_max, *failures - 1));
        warn!(method, path, attempt = *failures, ?wait, %error, "Binance request failed; retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// One signed request.
    async fn attempt(&self, method: Method, path: &str, params: &[(&str, String)]) -> Attempt {
        let query = self.signed_query(params);
        let url = format!("{}{path}?{query}", self.base);
        debug!(%method, path, "Binance request");
        let sent = self.http.request(method, url).header(API_KEY_HEADER, self.api_key_header.clone()).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return self.transport_failure(e),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return self.transport_failure(e),
        };
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            return match serde_json::from_slice::<Value>(&body) {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Fail(FuturesError::Decode {
                    field: "body".into(),
                    reason: format!("not JSON ({e}): {}", clip(&text)),
                }),
            };
        }
        let error = FuturesError::from_response(status.as_u16(), &text, retry_after);
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::IM_A_TEAPOT {
            match retry_after {
                Some(wait) if wait > MAX_RETRY_AFTER => Attempt::Fail(error),
                wait => Attempt::Retry { error, wait, not_sent: true },
            }
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            Attempt::Retry { error, wait: None, not_sent: false }
        } else {
            Attempt::Fail(error)
        }
    }

    /// A reqwest error, its URL (and so the signature) stripped.
    fn transport_failure(&self, e: reqwest::Error) -> Attempt {
        let e = e.without_url();
        if e.is_builder() || e.is_redirect() {
            return Attempt::Fail(FuturesError::Transport(error_chain(&e)));
        }
        // No connection could be made: the request never left.
        let not_sent = e.is_connect();
        let error = if e.is_timeout() {
            FuturesError::Timeout { after: self.config.timeout }
        } else {
            // Connect, request, body: the connection failed somewhere along the way.
            FuturesError::Transport(error_chain(&e))
        };
        Attempt::Retry { error, wait: None, not_sent }
    }

    /// `params`, `recvWindow`, `timestamp` form-encoded, then `&signature=` over exactly that.
    fn signed_query(&self, params: &[(&str, String)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in params {
            query.append_pair(key, value);
        }
        query.append_pair("recvWindow", &self.config.recv_window_ms.to_string());
        query.append_pair("timestamp", &(self.clock)().to_string());
        let mut query = query.finish();
        let signature = sign(&self.credentials.secret, &query, "");
        query.push_str("&signature=");
        query.push_str(&signature);
        query
    }
}

impl fmt::Debug for FuturesClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FuturesClient")
            .field("base", &self.base)
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The parameters of `GET /fapi/v1/order` by client order id.
fn query_params(symbol: &str, id: &str) -> Result<[(&'static str, String); 2], FuturesError> {
    Ok([("symbol", normalize_symbol(symbol)?), ("origClientOrderId", client_order_id(id))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_signed_over_exactly_what_is_sent() {
        let config = FuturesConfig { base_url: Some("http://127.0.0.1:1".into()), ..FuturesConfig::default() };
        let client = FuturesClient::with_credentials(&config, Credentials::new("k", "s"))
            .unwrap()
            .with_clock(|| 1_499_827_319_559);
        let q = client.signed_query(&[("symbol", "BTCUSDT".into()), ("newClientOrderId", "a:b/c".into())]);
        let (unsigned, signature) = q.rsplit_once("&signature=").unwrap();
        assert_eq!(unsigned, "symbol=BTCUSDT&newClientOrderId=a%3Ab%2Fc&recvWindow=5000&timestamp=1499827319559");
        assert_eq!(signature, sign("s", unsigned, ""));
    }
}
