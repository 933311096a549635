//! The envelope every bus message travels in, and its MessagePack codec.
//!
//! A stream entry has one field, [`ENVELOPE_FIELD`], holding the MessagePack-encoded
//! [`Envelope`] (or [`crate::pack::PACK_FIELD`], holding several); the payload inside is itself MessagePack of a [`Payload`] type. The envelope
//! names the payload's kind and schema version so a consumer refuses what it does not know
//! (DESIGN invariant 5) instead of decoding it by luck. Decoding never panics: every failure is a
//! [`DecodeError`] with the reason, which the consumer turns into a `decode_error` dead letter.

use serde::{Deserialize, Serialize};
use tradeflow_core::{MessageId, Payload, time::now_ms};

/// Name of the stream-entry field that holds the encoded envelope.
pub const ENVELOPE_FIELD: &str = "e";

/// Version of the envelope layout itself (not of the payload).
pub const ENVELOPE_VERSION: u8 = 1;

/// A message as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope layout version, [`ENVELOPE_VERSION`].
    pub ev: u8,
    /// Payload type name ([`Payload::KIND`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// Payload schema version ([`Payload::VERSION`]).
    pub v: u16,
    /// Deterministic message id, derived from the cause (DESIGN invariant 2).
    pub id: String,
    /// Partition key (symbol, account, ...).
    pub key: String,
    /// Id of the message that caused this one, if any.
    pub causation: Option<String>,
    /// Service that produced the message.
    pub producer: String,
    /// Production time, epoch ms.
    pub produced_at: i64,
    /// MessagePack of the payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The largest payload buffer a thread keeps between messages.
const PAYLOAD_BUFFER_KEEP: usize = 1 << 20;

/// An [`Envelope`] borrowed from the bytes it was decoded from (or from an owned envelope).
///
/// Consumers decode this, not [`Envelope`]: the handler's own decode reads the payload where
/// it lies in the Redis reply, instead of a copy of it and of five strings made first. Same
/// field names and order as [`Envelope`]: it encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeRef<'a> {
    pub ev: u8,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub v: u16,
    pub id: &'a str,
    pub key: &'a str,
    #[serde(borrow)]
    pub causation: Option<&'a str>,
    pub producer: &'a str,
    pub produced_at: i64,
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
}

impl<'a> EnvelopeRef<'a> {
    /// Decodes stream-entry bytes, borrowing from them. Any bytes at all: never panics.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let unsupported = |got| DecodeError::UnsupportedEnvelope { got, supported: ENVELOPE_VERSION };
        match rmp_serde::from_slice::<EnvelopeRef<'a>>(bytes) {
            Ok(env) if env.ev == ENVELOPE_VERSION => Ok(env),
            Ok(env) => Err(unsupported(env.ev)),
            Err(e) => {
                // A future layout may not decode as this one: if the bytes carry another
                // layout version, say so rather than give a confusing field error. (Only
                // failures pay for this second look.)
                #[derive(Deserialize)]
                struct Head {
                    ev: u8,
                }
                match rmp_serde::from_slice::<Head>(bytes) {
                    Ok(head) if head.ev != ENVELOPE_VERSION => Err(unsupported(head.ev)),
                    _ => Err(DecodeError::Malformed { reason: e.to_string() }),
                }
            }
        }
    }

    /// Decodes the payload as `T`, refusing another kind or an unknown schema version.
    pub fn open<T: Payload>(&self) -> Result<T, DecodeError> {
        if self.kind != T::KIND {
            return Err(DecodeError::UnexpectedKind { expected: T::KIND.to_string(), got: self.kind.to_string() });
        }
        if self.v != T::VERSION {
            return Err(DecodeError::UnknownVersion {
                kind: self.kind.to_string(),
                got: self.v,
                supported: T::VERSION,
            });
        }
        rmp_serde::from_slice(self.payload).map_err(|e| DecodeError::Payload {
            kind: self.kind.to_string(),
            version: self.v,
            reason: e.to_string(),
        })
    }

    /// An owned copy.
    pub fn into_owned(self) -> Envelope {
        Envelope {
            ev: self.ev,
            kind: self.kind.to_string(),
            v: self.v,
            id: self.id.to_string(),
            key: self.key.to_string(),
            causation: self.causation.map(str::to_string),
            producer: self.producer.to_string(),
            produced_at: self.produced_at,
            payload: self.payload.to_vec(),
        }
    }

    /// What a consumer keeps of the envelope beside the decoded message.
    pub fn head(&self) -> EnvelopeHead {
        EnvelopeHead { id: self.id.to_string(), produced_at: self.produced_at }
    }

    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        // Field names, the five strings and the payload, plus at most 9 bytes of MessagePack
        // framing per field: one allocation, no growth.
        let strings =
            self.kind.len() + self.id.len() + self.key.len() + self.causation.map_or(0, str::len) + self.producer.len();
        let mut out = Vec::with_capacity(self.payload.len() + strings + 160);
        rmp_serde::encode::write_named(&mut out, self)
            .map_err(|e| EncodeError { what: format!("envelope {}", self.id), reason: e.to_string() })?;
        Ok(out)
    }
}

/// What a consumer keeps of an envelope beside the message decoded from its payload: only
/// what handlers use, because every string kept is an allocation per message read (about 20
/// per candle). Kind and version are the message type's; the key and cause are in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHead {
    /// The message id.
    pub id: String,
    /// Production time, epoch ms.
    pub produced_at: i64,
}

/// Why bytes are not a message this consumer can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry has no `{field}` field (fields present: [{present}])")]
    MissingField { field: &'static str, present: String },
    #[error("pack is malformed: {reason}")]
    MalformedPack { reason: String },
    #[error("envelope is not valid MessagePack: {reason}")]
    Malformed { reason: String },
    #[error("envelope layout version {got} is not supported (this build reads {supported})")]
    UnsupportedEnvelope { got: u8, supported: u8 },
    #[error("payload type `{got}` is not accepted here (expected `{expected}`)")]
    UnexpectedKind { expected: String, got: String },
    #[error("schema version {got} of `{kind}` is unknown (this build reads version {supported})")]
    UnknownVersion { kind: String, got: u16, supported: u16 },
    #[error("payload of `{kind}` v{version} does not decode: {reason}")]
    Payload { kind: String, version: u16, reason: String },
}

/// Why a message could not be encoded (a bug in the producer's types, never input data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {what}: {reason}")]
pub struct EncodeError {
    pub what: String,
    pub reason: String,
}

impl Envelope {
    /// Wraps a payload, encoding it.
    pub fn wrap<T: Payload>(
        id: &MessageId,
        key: &str,
        causation: Option<&MessageId>,
        producer: &str,
        payload: &T,
    ) -> Result<Self, EncodeError> {
        let bytes = rmp_serde::to_vec_named(payload)
            .map_err(|e| EncodeError { what: format!("{} payload {id}", T::KIND), reason: e.to_string() })?;
        Ok(Self {
            ev: ENVELOPE_VERSION,
            kind: T::KIND.to_string(),
            v: T::VERSION,
            id: id.to_string(),
            key: key.to_string(),
            causation: causation.map(|c| c.to_string()),
            producer: producer.to_string(),
            produced_at: now_ms(),
            payload: bytes,
        })
    }

    /// The envelope as stream-entry bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.as_ref().encode()
    }

    /// Wraps and encodes a payload in one step: the bytes of [`Envelope::wrap`] then
    /// [`Envelope::encode`], without building the owned envelope. This is the producers' hot
    /// path: it encodes the payload into a reused per-thread buffer and the envelope into one
    /// buffer of the right size, instead of five string copies and two vectors grown by
    /// doubling (profiles of the pipeline bench had about a sixth of the inference stage's
    /// time in those reallocations).
    pub fn encode_new<T: Payload>(
        id: &MessageId,
        key: &str,
        causation: Option<&MessageId>,
        producer: &str,
        payload: &T,
    ) -> Result<Vec<u8>, EncodeError> {
        Self::encode_new_at(id, key, causation, producer, payload, now_ms())
    }

    fn encode_new_at<T: Payload>(
        id: &MessageId,
        key: &str,
        causation: Option<&MessageId>,
        producer: &str,
        payload: &T,
        produced_at: i64,
    ) -> Result<Vec<u8>, EncodeError> {
        thread_local! {
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PAYLOAD.with_borrow_mut(|buf| {
            buf.clear();
            rmp_serde::encode::write_named(buf, payload)
                .map_err(|e| EncodeError { what: format!("{} payload {id}", T::KIND), reason: e.to_string() })?;
            let out = EnvelopeRef {
                ev: ENVELOPE_VERSION,
                kind: T::KIND,
                v: T::VERSION,
                id: id.as_str(),
                key,
                causation: causation.map(MessageId::as_str),
                producer,
                produced_at,
                payload: &buf[..],
            }
            .encode();
            // A rare huge payload must not pin its buffer for the thread's lifetime.
            if buf.capacity() > PAYLOAD_BUFFER_KEEP {
                *buf = Vec::new();
            }
            out
        })
    }

    /// Decodes stream-entry bytes. Any bytes at all: never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        EnvelopeRef::decode(bytes).map(|e| e.into_owned())
    }

    /// The envelope borrowed.
    pub fn as_ref(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            ev: self.ev,
            kind: &self.kind,
            v: self.v,
            id: &self.id,
            key: &self.key,
            causation: self.causation.as_deref(),
            producer: &self.producer,
            produced_at: self.produced_at,
            payload: &self.payload,
        }
    }

    /// Decodes the payload as `T`, refusing another kind or an unknown schema version.
    pub fn open<T: Payload>(&self) -> Result<T, DecodeError> {
        self.as_ref().open()
    }

    /// The payload as JSON, for inspection (DLQ listings, debugging). Falls back to a hex dump
    /// description when the payload is not MessagePack.
    pub fn payload_json(&self) -> serde_json::Value {
        payload_to_json(&self.payload)
    }
}

/// Best-effort MessagePack → JSON for humans; never fails.
pub fn payload_to_json(bytes: &[u8]) -> serde_json::Value {
    match rmp_serde::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => v,
        Err(e) => serde_json::json!({
            "undecodable": e.to_string(),
            "bytes": bytes.len(),
            "hex_prefix": bytes.iter().take(64).map(|b| format!("{b:02x}")).collect::<String>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Tick {
        seq: u64,
        note: String,
    }
    impl Payload for Tick {
        const KIND: &'static str = "tick";
        const VERSION: u16 = 2;
    }

    fn tick_envelope(seq: u64) -> Envelope {
        let id = MessageId::new(format!("t:{seq}")).unwrap();
        Envelope::wrap(&id, "k", None, "test", &Tick { seq, note: "n".into() }).unwrap()
    }

    #[test]
    fn wrong_kind_and_version_are_refused_by_name() {
        let mut env = tick_envelope(1);
        env.v = 3;
        assert_eq!(
            env.open::<Tick>().unwrap_err().to_string(),
            "schema version 3 of `tick` is unknown (this build reads version 2)"
        );
        env.kind = "candle".into();
        assert!(matches!(env.open::<Tick>(), Err(DecodeError::UnexpectedKind { .. })));
    }

    #[test]
    fn future_envelope_layout_is_refused() {
        let mut env = tick_envelope(1);
        env.ev = 9;
        let bytes = rmp_serde::to_vec_named(&env).unwrap();
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedEnvelope { got: 9, supported: ENVELOPE_VERSION })
        );
    }

    #[test]
    fn another_layout_is_named_even_when_it_does_not_decode_as_this_one() {
        let future = rmp_serde::to_vec_named(&serde_json::json!({"ev": 2, "parts": [1, 2]})).unwrap();
        assert_eq!(Envelope::decode(&future), Err(DecodeError::UnsupportedEnvelope { got: 2, supported: 1 }));
        let broken = rmp_serde::to_vec_named(&serde_json::json!({"ev": 1, "type": "tick"})).unwrap();
        assert!(matches!(Envelope::decode(&broken), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn payload_renders_as_json() {
        let env = tick_envelope(7);
        assert_eq!(env.payload_json(), serde_json::json!({"seq": 7, "note": "n"}));
        assert!(payload_to_json(&[0xc1]).get("undecodable").is_some());
    }

    proptest! {
        #[test]
        fn envelope_round_trips(seq in any::<u64>(), note in ".*", key in "[a-zA-Z0-9]{0,20}", cause in proptest::option::of("[a-z:/0-9]{1,40}"), at in any::<i64>()) {
            let id = MessageId::new(format!("t:{seq}")).unwrap();
            let cause = cause.map(|c| MessageId::new(c).unwrap());
            let mut env = Envelope::wrap(&id, &key, cause.as_ref(), "prop", &Tick { seq, note: note.clone() }).unwrap();
            env.produced_at = at;
            let back = Envelope::decode(&env.encode().unwrap()).unwrap();
            prop_assert_eq!(&back, &env);
            prop_assert_eq!(back.open::<Tick>().unwrap(), Tick { seq, note });
        }

        #[test]
        fn encode_new_gives_the_bytes_of_wrap_then_encode(seq in any::<u64>(), note in ".{0,3000}", key in "[a-zA-Z0-9]{0,20}", cause in proptest::option::of("[a-z:/0-9]{1,40}"), at in any::<i64>()) {
            let id = MessageId::new(format!("t:{seq}")).unwrap();
            let cause = cause.map(|c| MessageId::new(c).unwrap());
            let tick = Tick { seq, note };
            let mut env = Envelope::wrap(&id, &key, cause.as_ref(), "prop", &tick).unwrap();
            env.produced_at = at;
            let fast = Envelope::encode_new_at(&id, &key, cause.as_ref(), "prop", &tick, at).unwrap();
            prop_assert_eq!(&fast, &rmp_serde::to_vec_named(&env).unwrap());
            prop_assert_eq!(&fast, &env.encode().unwrap());
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(env) = Envelope::decode(&bytes) {
                let _ = env.open::<Tick>();
            }
            let _ = payload_to_json(&bytes);
        }

        #[test]
        fn decoding_corrupted_envelopes_never_panics(seq in any::<u64>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = tick_envelope(seq).encode().unwrap();
            for (i, b) in flips {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            if let Ok(env) = Envelope::decode(&bytes) {
                let _ = env.open::<Tick>();
            }
        }
    }
}
