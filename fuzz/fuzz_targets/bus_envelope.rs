//! Bus envelopes as a consumer meets them: any bytes of an `e` field decoded by
//! [`EnvelopeRef::decode`], the payload then opened as every payload type the pipeline carries
//! (each refuses another kind by name), and rendered as JSON the way DLQ listings do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_bus::envelope::{EnvelopeRef, payload_to_json};
use tradeflow_core::{control, decision, execution, job, market, news, order, report, request, signal};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = EnvelopeRef::decode(data) else { return };
    let _ = env.head();
    let _ = payload_to_json(env.payload);
    let owned = env.into_owned();
    let _ = owned.payload_json();
    let _ = env.open::<market::Candle>();
    let _ = env.open::<market::CandleRefused>();
    let _ = env.open::<signal::Signal>();
    let _ = env.open::<signal::SignalVote>();
    let _ = env.open::<decision::Decision>();
    let _ = env.open::<decision::LateSignal>();
    let _ = env.open::<order::OrderIntent>();
    let _ = env.open::<order::Rejection>();
    let _ = env.open::<order::Mark>();
    let _ = env.open::<order::AccountAlert>();
    let _ = env.open::<control::ControlCommand>();
    let _ = env.open::<control::CycleEvent>();
    let _ = env.open::<control::AuditRecord>();
    let _ = env.open::<job::JobRequest>();
    let _ = env.open::<job::JobEvent>();
    let _ = env.open::<execution::Fill>();
    let _ = env.open::<execution::PositionUpdate>();
    let _ = env.open::<execution::AccountUpdate>();
    let _ = env.open::<news::NewsItem>();
    let _ = env.open::<report::AccountReport>();
    // Risk checks a manual order request field by field before sizing it.
    if let Ok(r) = env.open::<request::OrderRequest>() {
        let _ = r.validate();
    }
});
