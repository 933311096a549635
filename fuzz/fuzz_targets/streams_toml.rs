//! `streams.toml`: any text parsed and validated by [`Topology::parse`], then asked what the
//! workers ask of it (backoffs, partitions of a key, key names, groups' streams).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_bus::Topology;
use tradeflow_bus::keys::{Keys, partition_of};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(topology) = Topology::parse(text, "streams.toml") else { return };
    let keys = Keys::new(&topology);
    for (name, spec) in &topology.streams {
        for deliveries in [0, 1, 2, 5, 31, 1000, u32::MAX] {
            let _ = spec.backoff_after(deliveries);
        }
        let p = partition_of("BTCUSDT", spec.partitions);
        let _ = keys.partition(name, p);
        let _ = keys.dlq(name, p);
        for group in &spec.groups {
            let _ = topology.group(group);
            let _ = topology.streams_read_by(group);
        }
        let _ = topology.stream(name);
    }
    let _ = topology.with_namespace("fuzz");
});
