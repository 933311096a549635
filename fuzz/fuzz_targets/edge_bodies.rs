//! The edge's JSON bodies with validation of their own, read as the handlers read them
//! (`axum::Json::from_bytes`, what the edge's `Json` extractor runs) and then checked as the
//! handlers check them:
//! - `POST /trading/orders` and `/paper/orders`: an [`OrderBody`] made a request and checked
//!   field by field by [`request_of`];
//! - `POST` / `PUT /trading/accounts`: an [`AccountConfig`] written into the accounts file the
//!   workers read ([`accounts_toml`]) beside an existing account, and that text parsed and
//!   validated by the workers' [`parse_accounts`]; an account accepted there must come back
//!   as it was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_edge::auth::{Identity, Role};
use tradeflow_edge::routes::orders::{OrderBody, request_of};
use tradeflow_edge::routes::trading::accounts_toml;
use tradeflow_edge::state::Caller;
use tradeflow_risk::{AccountConfig, parse_accounts};

fuzz_target!(|data: &[u8]| {
    match axum::Json::<OrderBody>::from_bytes(data) {
        Ok(axum::Json(body)) => {
            let caller = Caller {
                identity: Identity { subject: "fuzz".into(), role: Role::Trader },
                ip: None,
                request_id: "req-fuzz".into(),
            };
            let _ = request_of(body, &caller);
        }
        Err(e) => drop(e.body_text()),
    }
    match axum::Json::<AccountConfig>::from_bytes(data) {
        Ok(axum::Json(body)) => {
            let existing = AccountConfig::paper("paper-technical", "technical", 10_000.0);
            let text = accounts_toml(&[existing, body.clone()]);
            if let Ok(parsed) = parse_accounts(&text, &["technical", "momentum"]) {
                assert_eq!(parsed.len(), 2, "{text}");
                assert_eq!(parsed[1], body, "the accounts file changed the account:\n{text}");
            }
        }
        Err(e) => drop(e.body_text()),
    }
});
