//! tradeflow execution: order intents in, fills out.
//!
//! - [`paper`]: a deterministic paper broker (pure code; the risk stage runs the same book as its
//!   shadow of each paper account);
//! - [`binance`]: a signed REST client for Binance USDⓈ-M futures;
//! - [`hyperliquid`]: a signed client for Hyperliquid perpetuals;
//! - [`price`]: a symbol's price from the exchanges' public endpoints, cached briefly.

pub mod binance;
pub mod exchange;
pub mod hyperliquid;
pub mod paper;
pub mod price;
pub mod report;
pub mod stage;
pub mod worker;
