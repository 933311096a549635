//! `profiles.toml` and `accounts.toml`: the input split at the first NUL byte into a profiles
//! text and an accounts text; the profiles parsed and validated by [`parse_profiles`] (the
//! defaults when they are refused), then the accounts by [`parse_accounts`] against their
//! names, as `tradeflow run` loads them (`crates/cli/src/stages.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_ensemble::profile::{DEFAULT_PROFILES, parse_profiles};
use tradeflow_risk::parse_accounts;

fuzz_target!(|data: &[u8]| {
    let (profiles_bytes, accounts_bytes) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let profiles = std::str::from_utf8(profiles_bytes)
        .ok()
        .and_then(|text| parse_profiles(text).ok())
        .unwrap_or_else(|| parse_profiles(DEFAULT_PROFILES).expect("the default profiles are valid"));
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let Ok(text) = std::str::from_utf8(accounts_bytes) else { return };
    if let Ok(accounts) = parse_accounts(text, &names) {
        for a in &accounts {
            assert!(a.validate("account").is_empty(), "an accepted account validates");
        }
    }
});
