//! A signed REST client for Binance USDⓈ-M futures.
//!
//! - [`sign`]: HMAC-SHA256 request signatures; [`client_order_id`]: the `newClientOrderId` sent
//!   for a caller's order id;
//! - [`FuturesConfig`] / [`Credentials`]: where to connect, which environment variables hold the
//!   API key and secret, timeouts and retries;
//! - [`FuturesClient`]: `set_leverage`, `set_margin_type`, `place_order` (idempotent by client
//!   order id), `query_order`, `query_order_by_id` and `cancel_order`, all signed, with retries
//!   on 5xx, timeouts, connection errors and rate limits;
//! - [`algo`]: conditional orders (stop market, take profit market, trailing stop) through the
//!   Algo Order API, which Binance requires for them since 2025-12-09: `place_algo_order` /
//!   `resume_algo_order` (idempotent by `clientAlgoId`), `query_algo_order`,
//!   `cancel_algo_order`, `open_algo_orders`;
//! - [`FuturesError`]: Binance's error codes mapped to typed reasons (-4120, a conditional type
//!   sent to `/fapi/v1/order`, among them).
//!
//! One-way position mode only (no `positionSide`); MARKET and LIMIT (GTC) orders on
//! `/fapi/v1/order`, reduce-only conditional orders on `/fapi/v1/algoOrder`.

pub mod account;
pub mod algo;
mod client;
mod config;
mod error;
mod sign;
mod types;

pub use algo::{AlgoOrderAck, AlgoOrderType, AlgoStatus, CALLBACK_RATE_RANGE, NewAlgoOrder};
pub use client::{API_KEY_HEADER, FuturesClient, MAX_RETRY_AFTER};
pub use config::{Credentials, FuturesConfig, MAINNET_URL, MAX_RECV_WINDOW_MS, TESTNET_URL};
pub use error::FuturesError;
pub use sign::{DERIVED_ID_PREFIX, MAX_CLIENT_ORDER_ID_LEN, client_order_id, sign};
pub use types::{MarginType, NewOrder, OrderAck, OrderSide, OrderStatus, OrderType};
