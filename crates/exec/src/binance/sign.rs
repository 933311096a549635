//! Request signatures and client order ids.
//!
//! Binance signs a request with HMAC-SHA256 keyed by the API secret over `totalParams`: the query
//! string as sent (without `signature`), directly followed by the request body as sent (no
//! separator). The signature goes in as the last query parameter, in lower-case hex.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Binance's limit on `newClientOrderId`: 1 to 36 characters of `[.A-Z:/a-z0-9_-]`.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 36;

/// The prefix of a client order id derived from a caller's id that does not fit Binance's rules.
pub const DERIVED_ID_PREFIX: &str = "tf-";

/// HMAC-SHA256 of `query` immediately followed by `body`, keyed with `secret`, in lower-case hex.
///
/// `query` is the raw query string exactly as it goes on the wire (percent-encoded, without a
/// leading `?` and without the `signature` parameter); `body` is the raw request body (empty when
/// every parameter travels in the query string, as [`super::FuturesClient`] does).
pub fn sign(secret: &str, query: &str, body: &str) -> String {
    // HMAC accepts keys of any length (long keys are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(query.as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `newClientOrderId` sent for the caller's order id `id`.
///
/// - an id Binance accepts as it is (1–36 characters of `[.A-Z:/a-z0-9_-]`) is used unchanged;
/// - any other id (longer, empty, other characters) becomes `tf-` followed by the lower-case hex
///   of the first 16 bytes of SHA-256 of the id's UTF-8 bytes: 35 characters, deterministic, so the
///   same caller id always gives the same client id (which makes placement idempotent).
///
/// The mapping is idempotent: `client_order_id(&client_order_id(x)) == client_order_id(x)`, so
/// [`super::FuturesClient::query_order`] takes either the caller's id or the id sent.
pub fn client_order_id(id: &str) -> String {
    if fits_binance(id) {
        return id.to_string();
    }
    let digest = Sha256::digest(id.as_bytes());
    format!("{DERIVED_ID_PREFIX}{}", hex::encode(&digest[..16]))
}

/// Whether Binance accepts `id` as a `newClientOrderId` as it is.
fn fits_binance(id: &str) -> bool {
    (1..=MAX_CLIENT_ORDER_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Binance's API documentation ("SIGNED endpoint examples").
    #[test]
    fn the_official_test_vector() {
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        assert_eq!(sign(secret, payload, ""), expected);
        // totalParams is query + body: any split of the same bytes signs the same.
        let (query, body) = payload.split_at(40);
        assert_eq!(sign(secret, query, body), expected);
        assert_eq!(sign(secret, "", payload), expected);
        assert_ne!(sign("other", payload, ""), expected);
    }

    #[test]
    fn ids_that_fit_are_kept() {
        for id in ["a", "order-1", "X.Y:z/9_-", &"a".repeat(36)] {
            assert_eq!(client_order_id(id), id);
        }
    }

    #[test]
    fn other_ids_are_hashed_deterministically() {
        let long = "intent:2024-01-01T00:00:00Z:BTCUSDT:strategy-alpha:0001";
        let derived = client_order_id(long);
        assert_eq!(derived.len(), 35);
        assert!(derived.starts_with("tf-"));
        assert!(fits_binance(&derived));
        assert_eq!(derived, client_order_id(long));
        assert_ne!(derived, client_order_id(&format!("{long}2")));
        // SHA-256("") starts e3b0c44298fc1c149afbf4c8996fb924.
        assert_eq!(client_order_id(""), "tf-e3b0c44298fc1c149afbf4c8996fb924");
        for id in [&"a".repeat(37), "with space", "ünïcode", "semi;colon"] {
            let d = client_order_id(id);
            assert!(fits_binance(&d), "{d}");
            assert_eq!(client_order_id(&d), d, "mapping is idempotent");
        }
    }
}
