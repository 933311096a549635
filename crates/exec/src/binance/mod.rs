//! A signed REST client for Binance USDⓈ-M futures.
//!
//! - [`sign`]: HMAC-SHA256 request signatures; [`client_order_id`]: the `newClientOrderId` sent
//!   for a caller's order id;
//! - [`FuturesConfig`] / [`Credentials`]: where to connect, which environment variables hold the
//!   API key and secret, timeouts and retries;
//! - [`FuturesClient`]: `set_leverage`, `set_margin_type`, `place_order` (idempotent by client
//!   order id) and `query_order`, all signed, with retries on 5xx, timeouts, connection errors
//!   and rate limits;
//! - [`FuturesError`]: Binance's error codes mapped to typed reasons.
//!
//! One-way position mode only (no `positionSide`); MARKET and LIMIT (GTC) orders.

mod client;
mod config;
mod error;
mod sign;
mod types;

pub use client::{API_KEY_HEADER, FuturesClient, MAX_RETRY_AFTER};
pub use config::{Credentials, FuturesConfig, MAINNET_URL, MAX_RECV_WINDOW_MS, TESTNET_URL};
pub use error::FuturesError;
pub use sign::{DERIVED_ID_PREFIX, MAX_CLIENT_ORDER_ID_LEN, client_order_id, sign};
pub use types::{MarginType, NewOrder, OrderAck, OrderSide, OrderStatus, OrderType};
