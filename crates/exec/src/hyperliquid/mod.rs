//! A signed client for Hyperliquid perpetuals.
//!
//! - [`signing`]: the action hash (msgpack of the action, nonce, vault), the phantom agent and
//!   its EIP-712 digest, secp256k1 signatures and their recovery; [`cloid`]: the client order
//!   id sent for a caller's order id;
//! - [`wire`]: the actions and answers of `/exchange` and `/info`, numbers as Hyperliquid
//!   writes them;
//! - [`HyperliquidConfig`]: where to connect (mainnet, testnet or a base URL), which
//!   environment variable holds the key, whose account (or vault) is traded;
//! - [`HyperliquidClient`]: `set_leverage`, `place_order` (market as IOC, limit, trigger; always
//!   idempotent by cloid), `cancel_by_cloid`, `cancel`, `order_status`, `open_orders`,
//!   `fills_of`, `account_state` (balances and positions), `all_mids`, with retries;
//! - [`venue`]: Hyperliquid as a venue of the exchange desk (market orders, trigger orders
//!   as protection, reading them back);
//! - [`HyperliquidError`].

mod client;
mod config;
mod error;
pub mod signing;
pub(crate) mod venue;
pub mod wire;

pub use client::{AccountState, HyperliquidClient, NewOrder, OrderAck, OrderKind, Position, Tpsl};
pub use config::{HyperliquidConfig, MAINNET_URL, TESTNET_URL, coin_of};
pub use error::HyperliquidError;
pub use signing::{Address, Signature, Signer, cloid};
