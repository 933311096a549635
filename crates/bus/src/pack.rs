//! Packed stream entries: several envelopes in one stream entry.
//!
//! Why: every stream entry costs the single-threaded Redis an XADD, a delivery per consumer
//! group and an XACK per group, and costs each reader a reply to parse. A stage emits its
//! outputs in batches (a candle's five signals, a read's worth of candles), all sent in one
//! MULTI anyway; packing the messages of one batch that go to the same partition into one entry
//! divides that per-entry cost by the pack size and changes nothing else that is observable:
//! the messages become visible at the same instant, in the same order within the partition.
//!
//! An entry holds either [`ENVELOPE_FIELD`] (one envelope, as written by older producers,
//! tools and DLQ replays) or [`PACK_FIELD`]: byte [`PACK_VERSION`], then per envelope a
//! little-endian `u32` length and the envelope's bytes. Consumers handle, retry and
//! dead-letter the messages of a pack one by one (see `consumer::partition`); an entry is
//! acknowledged once every message in it is settled.

use crate::envelope::{DecodeError, ENVELOPE_FIELD};
use crate::reply::RawEntry;

/// Name of the stream-entry field that holds a pack of envelopes.
pub const PACK_FIELD: &str = "p";

/// Version of the pack layout.
pub const PACK_VERSION: u8 = 1;

/// Packs encoded envelopes into one field value.
pub fn encode<'a, I>(envelopes: I) -> Vec<u8>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let envelopes = envelopes.into_iter();
    // Sized up front: packs run to hundreds of KiB, and growing by doubling copied each one
    // several times.
    let len = 1 + envelopes.clone().map(|e| 4 + e.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(PACK_VERSION);
    for e in envelopes {
        // An envelope over 4 GiB cannot exist: Redis caps a string at 512 MB.
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Splits a pack into its envelopes' bytes. Any bytes at all: never panics.
pub fn decode(bytes: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let bad = |reason: String| DecodeError::MalformedPack { reason };
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| bad("empty pack".into()))?;
    if version != PACK_VERSION {
        return Err(bad(format!("pack layout version {version} is not supported (this build reads {PACK_VERSION})")));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(bad(format!("{} trailing byte(s) after message {}: not a length", rest.len(), out.len())));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(bad(format!("message {} claims {len} bytes, only {} remain", out.len(), tail.len())));
        }
        let (msg, tail) = tail.split_at(len);
        out.push(msg);
        rest = tail;
    }
    if out.is_empty() {
        return Err(bad("pack holds no message".into()));
    }
    Ok(out)
}

/// The encoded envelopes an entry carries, in order: one for a plain entry, several for a pack.
pub fn messages(entry: &RawEntry) -> Result<Vec<&[u8]>, DecodeError> {
    if let Some(bytes) = entry.field(ENVELOPE_FIELD) {
        return Ok(vec![bytes]);
    }
    match entry.field(PACK_FIELD) {
        Some(bytes) => decode(bytes),
        None => Err(DecodeError::MissingField { field: "e` or `p", present: entry.field_names() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::EntryId;
    use proptest::prelude::*;

    fn entry(fields: &[(&str, &[u8])]) -> RawEntry {
        RawEntry {
            id: EntryId { ms: 1, seq: 0 },
            fields: Some(fields.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()),
        }
    }

    #[test]
    fn plain_and_packed_entries() {
        assert_eq!(messages(&entry(&[("e", b"abc")])).unwrap(), vec![&b"abc"[..]]);
        let pack = encode([&b"one"[..], b"", b"three"]);
        assert_eq!(messages(&entry(&[("p", &pack)])).unwrap(), vec![&b"one"[..], b"", b"three"]);
        let err = messages(&entry(&[("x", b"1")])).unwrap_err();
        assert_eq!(err.to_string(), "entry has no `e` or `p` field (fields present: [x])");
    }

    #[test]
    fn broken_packs_are_refused_with_the_reason() {
        let msg = |b: &[u8]| decode(b).unwrap_err().to_string();
        assert_eq!(msg(b""), "pack is malformed: empty pack");
        assert_eq!(msg(&[2, 0]), "pack is malformed: pack layout version 2 is not supported (this build reads 1)");
        assert_eq!(msg(&[1]), "pack is malformed: pack holds no message");
        assert_eq!(msg(&[1, 5, 0, 0, 0, 1]), "pack is malformed: message 0 claims 5 bytes, only 1 remain");
        let mut trailing = encode([&b"ok"[..]]);
        trailing.push(9);
        assert_eq!(msg(&trailing), "pack is malformed: 1 trailing byte(s) after message 1: not a length");
    }

    proptest! {
        #[test]
        fn round_trips(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20)) {
            let pack = encode(msgs.iter().map(Vec::as_slice));
            let back: Vec<Vec<u8>> = decode(&pack).unwrap().into_iter().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, msgs);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
