//! Packed stream entries: any bytes of a `p` field split by [`pack::decode`], and each message
//! decoded as an envelope (as `consumer::partition` does before handling them one by one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_bus::envelope::EnvelopeRef;
use tradeflow_bus::pack;

fuzz_target!(|data: &[u8]| {
    let Ok(messages) = pack::decode(data) else { return };
    assert!(!messages.is_empty(), "a decoded pack holds at least one message");
    for m in &messages {
        if let Ok(env) = EnvelopeRef::decode(m) {
            let _ = env.into_owned();
        }
    }
    // What is decoded encodes back to the same bytes.
    assert_eq!(pack::encode(messages.iter().copied()), data);
});
