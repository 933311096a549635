//! Signatures of Hyperliquid `/exchange` actions ("L1 actions"), as Hyperliquid specifies them
//! and its official Python SDK implements them (`hyperliquid/utils/signing.py`, read 2026-12-06):
//!
//! 1. the **action hash**: Keccak-256 of the action's msgpack encoding (a map whose keys are in
//!    the order the SDK writes them: see [`super::wire`]), then the nonce as 8 big-endian bytes,
//!    then `0x00` without a vault or `0x01` and the vault's 20 address bytes, then (only when an
//!    expiry is set) `0x00` and `expiresAfter` as 8 big-endian bytes;
//! 2. the **phantom agent** `Agent { source, connectionId }`: `source` is `"a"` on mainnet and
//!    `"b"` on the testnet, `connectionId` the action hash;
//! 3. its **EIP-712** digest in the domain `{name: "Exchange", version: "1", chainId: 1337,
//!    verifyingContract: 0x0}`, signed with secp256k1 (RFC 6979 nonces, low s) and sent as
//!    `{r, s, v}` with `v = 27 + recovery id`.
//!
//! The tests reproduce the SDK's published vectors (`tests/signing_test.py`).

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sha3::Keccak256;

use super::error::HyperliquidError;

/// Keccak-256 (Ethereum's hash, not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// `0x` and 40 hex digits, either case.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
        let mut out = [0u8; 20];
        if digits.len() != 40 || hex::decode_to_slice(digits, &mut out).is_err() {
            return Err(format!("{text:?} is not an address (0x and 40 hex digits)"));
        }
        Ok(Self(out))
    }

    /// The address of a public key: the last 20 bytes of Keccak-256 of its uncompressed point
    /// without the `0x04` prefix.
    pub fn of_key(key: &VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        let hash = keccak256(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Self(out)
    }
}

/// Lower-case `0x…`, the form Hyperliquid's `/info` takes and answers with.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A signature as `/exchange` takes it: `r` and `s` as `0x` hex numbers without leading zeros
/// (as the SDK prints them), `v` 27 or 28.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub r: String,
    pub s: String,
    pub v: u8,
}

/// A private key that signs actions. `Debug` prints only its address.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    address: Address,
}

impl Signer {
    /// From 32 bytes in hex (64 digits, `0x` optional). The error never shows the key.
    pub fn from_hex(text: &str) -> Result<Self, HyperliquidError> {
        let text = text.trim();
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let mut bytes = [0u8; 32];
        let bad = || HyperliquidError::InvalidKey("not 64 hex digits (32 bytes, 0x optional)".into());
        if digits.len() != 64 {
            return Err(bad());
        }
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| bad())?;
        let key = SigningKey::from_slice(&bytes).map_err(|_| {
            HyperliquidError::InvalidKey("not a secp256k1 private key (zero or ≥ the group order)".into())
        })?;
        let address = Address::of_key(key.verifying_key());
        Ok(Self { key, address })
    }

    /// The signer's (agent or account) address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte EIP-712 digest.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<Signature, HyperliquidError> {
        let (sig, recovery) = self
            .key
            .sign_prehash_recoverable(digest)
            .map_err(|e| HyperliquidError::Signing(format!("ECDSA signing failed: {e}")))?;
        let (r, s) = sig.split_bytes();
        Ok(Signature { r: hex_number(&r), s: hex_number(&s), v: 27 + recovery.to_byte() })
    }

    /// Signs `action` as an L1 action (see the module documentation).
    pub fn sign_l1_action<A: Serialize>(
        &self,
        action: &A,
        vault: Option<&Address>,
        nonce: u64,
        expires_after: Option<u64>,
        mainnet: bool,
    ) -> Result<Signature, HyperliquidError> {
        let hash = action_hash(action, vault, nonce, expires_after)?;
        self.sign_digest(&agent_digest(&hash, mainnet))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("address", &self.address).field("key", &"***").finish()
    }
}

/// `0x` and the big-endian number without leading zeros (`0x0` for zero).
fn hex_number(bytes: &[u8]) -> String {
    let digits = hex::encode(bytes);
    let trimmed = digits.trim_start_matches('0');
    format!("0x{}", if trimmed.is_empty() { "0" } else { trimmed })
}

/// The 32 bytes of a `0x` hex number of at most 64 digits.
fn number_bytes(text: &str) -> Result<[u8; 32], String> {
    let digits = text.strip_prefix("0x").ok_or_else(|| format!("{text:?} does not start with 0x"))?;
    if digits.is_empty() || digits.len() > 64 {
        return Err(format!("{text:?} is not a 0x hex number of 1 to 64 digits"));
    }
    let padded = format!("{digits:0>64}");
    let mut out = [0u8; 32];
    hex::decode_to_slice(&padded, &mut out).map_err(|_| format!("{text:?} is not hex"))?;
    Ok(out)
}

/// The action hash: Keccak-256 over msgpack(action) ‖ nonce ‖ vault flag (‖ vault) (‖ 0x00 ‖
/// expiresAfter).
pub fn action_hash<A: Serialize>(
    action: &A,
    vault: Option<&Address>,
    nonce: u64,
    expires_after: Option<u64>,
) -> Result<[u8; 32], HyperliquidError> {
    let mut data = rmp_serde::to_vec_named(action)
        .map_err(|e| HyperliquidError::Signing(format!("msgpack of the action: {e}")))?;
    data.extend_from_slice(&nonce.to_be_bytes());
    match vault {
        None => data.push(0),
        Some(v) => {
            data.push(1);
            data.extend_from_slice(&v.0);
        }
    }
    if let Some(t) = expires_after {
        data.push(0);
        data.extend_from_slice(&t.to_be_bytes());
    }
    Ok(keccak256(&data))
}

/// The EIP-712 digest of the phantom agent `Agent { source: "a" | "b", connectionId: hash }`.
pub fn agent_digest(action_hash: &[u8; 32], mainnet: bool) -> [u8; 32] {
    let domain_type = keccak256(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    let mut chain_id = [0u8; 32];
    chain_id[30..].copy_from_slice(&1337u16.to_be_bytes());
    let domain = keccak256(&[domain_type, keccak256(b"Exchange"), keccak256(b"1"), chain_id, [0u8; 32]].concat());
    let agent_type = keccak256(b"Agent(string source,bytes32 connectionId)");
    let source: &[u8] = if mainnet { b"a" } else { b"b" };
    let agent = keccak256(&[agent_type, keccak256(source), *action_hash].concat());
    keccak256(&[&[0x19u8, 0x01][..], &domain, &agent].concat())
}

/// The address that signed `digest` with `signature`.
pub fn recover_signer(digest: &[u8; 32], signature: &Signature) -> Result<Address, String> {
    let r = number_bytes(&signature.r).map_err(|e| format!("signature.r: {e}"))?;
    let s = number_bytes(&signature.s).map_err(|e| format!("signature.s: {e}"))?;
    let sig = EcdsaSignature::from_scalars(r, s).map_err(|e| format!("signature: not an ECDSA signature ({e})"))?;
    let id = signature
        .v
        .checked_sub(27)
        .and_then(RecoveryId::from_byte)
        .ok_or_else(|| format!("signature.v: {} is not 27 or 28", signature.v))?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, id).map_err(|e| format!("signature: {e}"))?;
    Ok(Address::of_key(&key))
}

/// Who signed the L1 action `action` (what Hyperliquid checks against the account or its
/// approved agents).
pub fn recover_l1_signer<A: Serialize>(
    action: &A,
    vault: Option<&Address>,
    nonce: u64,
    expires_after: Option<u64>,
    mainnet: bool,
    signature: &Signature,
) -> Result<Address, String> {
    let hash = action_hash(action, vault, nonce, expires_after).map_err(|e| e.to_string())?;
    recover_signer(&agent_digest(&hash, mainnet), signature)
}

/// The `cloid` sent for the caller's order id: `0x` and the first 16 bytes of SHA-256 of the
/// id, in lower-case hex (Hyperliquid's client order ids are 16 bytes). Deterministic, so a
/// redelivered order finds the order it placed. An id that is a cloid already is kept.
pub fn cloid(id: &str) -> String {
    let is_cloid = id.len() == 34
        && id.starts_with("0x")
        && id[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_cloid {
        return id.to_string();
    }
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("0x{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_numbers_drop_leading_zeros_and_read_back() {
        let mut b = [0u8; 32];
        b[31] = 0x0a;
        b[1] = 0x05;
        let text = hex_number(&b);
        assert!(text.starts_with("0x5"), "{text}");
        assert_eq!(number_bytes(&text).unwrap(), b);
        assert_eq!(hex_number(&[0u8; 32]), "0x0");
        assert!(number_bytes("12").is_err());
        assert!(number_bytes(&format!("0x{}", "1".repeat(65))).is_err());
    }

    #[test]
    fn keys_never_print_and_bad_keys_say_why() {
        let s = Signer::from_hex("0x0123456789012345678901234567890123456789012345678901234567890123").unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("0123456789012345678901234567890123456789012345678901234567890123"), "{text}");
        assert!(Signer::from_hex("0x12").is_err());
        assert!(Signer::from_hex(&"0".repeat(64)).is_err());
        let e = Signer::from_hex(&"zz".repeat(32)).unwrap_err().to_string();
        assert!(!e.contains("zz"), "{e}");
    }

    #[test]
    fn cloids_are_16_bytes_deterministic_and_kept() {
        let c = cloid("intent-1");
        assert_eq!(c.len(), 34);
        assert_eq!(c, cloid("intent-1"));
        assert_ne!(c, cloid("intent-2"));
        assert_eq!(cloid(&c), c);
        // SHA-256("") starts e3b0c44298fc1c149afbf4c8996fb924.
        assert_eq!(cloid(""), "0xe3b0c44298fc1c149afbf4c8996fb924");
    }
}
