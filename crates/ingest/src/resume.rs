//! Where an ingest picks up: the last candle of each series present on `md.candles`.
//!
//! Redis keeps what it acknowledged only as well as its `appendfsync` setting lets it (see
//! docs/bus.md, "Durability"): a crash of its machine under `everysec` can take the last second
//! of entries with it. A producer that went on from where *it* was would leave that tail out
//! for good. So a replay starts, and after an outage goes on, from what the stream holds: the
//! newest entry of each series marks the point up to which every bar is known to be in (the
//! stream loses a suffix, never a middle), and everything after it is sent (again). A bar sent
//! twice has the same message id both times, which every consumer skips.
//!
//! Aggregated series (4h built from 1h) need whole buckets: when the last aggregated candle
//! present is older than the last raw one, a replay puts the bars of the first bucket not yet
//! out through the stage again without sending their own candles, so that bucket is built from
//! all its bars. (A Binance source fetches from that bucket instead: those bars are sent again,
//! with the same ids.)

use std::collections::HashMap;

use tradeflow_bus::keys::partition_of;
use tradeflow_bus::tap::read_back;
use tradeflow_bus::{Bus, BusError, EnvelopeRef, pack};
use tradeflow_core::Payload;
use tradeflow_core::market::{Candle, Interval};

use crate::replay::CANDLES;

/// (source, symbol, interval) of a candle series, as in its ids.
pub type SeriesKey = (String, String, Interval);

/// Entries read per XREVRANGE while looking back.
const PAGE: usize = 500;

/// The open time of the newest candle of each series of `wanted` on `md.candles`; a series with
/// no candle there (never sent, or trimmed away) is absent from the map.
///
/// Each partition is read backwards from its end, a page at a time, until every wanted series
/// routed to it is found or its first entry is reached: a series that was never sent costs a
/// read of its whole partition, the usual case (all found in the last pages) a round trip or two.
pub async fn last_candles(bus: &Bus, wanted: &[SeriesKey]) -> Result<HashMap<SeriesKey, i64>, BusError> {
    let spec = bus.topology().stream(CANDLES)?;
    let mut by_partition: HashMap<u32, Vec<&SeriesKey>> = HashMap::new();
    for series in wanted {
        by_partition.entry(partition_of(&series.1, spec.partitions)).or_default().push(series);
    }
    let mut found = HashMap::new();
    for (p, series) in by_partition {
        let mut missing = series.len();
        let mut before = None;
        while missing > 0 {
            let entries = read_back(bus, CANDLES, p, before, PAGE).await?;
            let Some(oldest) = entries.last() else { break };
            before = Some(oldest.id);
            for entry in &entries {
                // An entry this reader cannot decode is the consumers' business (they
                // dead-letter it); it holds no candle we could resume from.
                let Ok(messages) = pack::messages(entry) else { continue };
                // A pack's messages are in sending order: the newest is the last.
                for bytes in messages.into_iter().rev() {
                    let Ok(envelope) = EnvelopeRef::decode(bytes) else { continue };
                    if envelope.kind != Candle::KIND {
                        continue;
                    }
                    let Ok(candle) = envelope.open::<Candle>() else { continue };
                    let series_key = (candle.source, candle.symbol, candle.interval);
                    if series.contains(&&series_key) && !found.contains_key(&series_key) {
                        found.insert(series_key, candle.bar.open_time());
                        missing -= 1;
                    }
                }
            }
            if entries.len() < PAGE {
                break;
            }
        }
    }
    Ok(found)
}

/// Where one raw series resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The open time of the first bar to send.
    pub send_from: i64,
    /// The open time of the first bar to go through the stage again, so that the buckets of
    /// the intervals built from this series that are not out yet are built from all their bars
    /// (those bars' own candles are on the stream and are not sent again). `None`: from the
    /// series' first bar (a built interval has nothing on the stream).
    pub rebuild_from: Option<i64>,
}

/// Where one raw series resumes; `None` when nothing of it is on the stream (send it all).
///
/// `last` is [`last_candles`]' answer; `targets` the intervals built from this series.
pub fn resume_point(
    last: &HashMap<SeriesKey, i64>,
    source: &str,
    symbol: &str,
    interval: Interval,
    targets: &[Interval],
) -> Option<Resume> {
    let key = |i: Interval| (source.to_string(), symbol.to_string(), i);
    let send_from = last.get(&key(interval))? + interval.millis();
    let rebuild_from = targets.iter().try_fold(send_from, |from, to| {
        // The first bucket not out yet.
        let next_bucket = last.get(&key(*to))? + to.millis();
        Some(from.min(next_bucket))
    });
    Some(Resume { send_from, rebuild_from })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn last(entries: &[(Interval, i64)]) -> HashMap<SeriesKey, i64> {
        entries.iter().map(|(i, t)| (("csv".to_string(), "BTC".to_string(), *i), *t)).collect()
    }

    #[test]
    fn a_series_resumes_after_its_last_candle_and_rebuilds_its_unbuilt_buckets() {
        let at = |send_from, rebuild_from| Some(Resume { send_from, rebuild_from });
        // Nothing there: from the start.
        assert_eq!(resume_point(&last(&[]), "csv", "BTC", Interval::H1, &[]), None);
        // The bar after the last one.
        assert_eq!(
            resume_point(&last(&[(Interval::H1, 10 * H)]), "csv", "BTC", Interval::H1, &[]),
            at(11 * H, Some(11 * H))
        );
        // Another source's or symbol's candles do not count.
        assert_eq!(resume_point(&last(&[(Interval::H1, 10 * H)]), "binance", "BTC", Interval::H1, &[]), None);
        // 4h built from 1h: the bucket at 8h is not out yet, so its bars go through the stage
        // again from 8h; sending resumes at 11h.
        let both = last(&[(Interval::H1, 10 * H), (Interval::H4, 4 * H)]);
        assert_eq!(resume_point(&both, "csv", "BTC", Interval::H1, &[Interval::H4]), at(11 * H, Some(8 * H)));
        // The bucket at 8h is out (its last bar at 11h came with it): nothing to rebuild.
        let both = last(&[(Interval::H1, 11 * H), (Interval::H4, 8 * H)]);
        assert_eq!(resume_point(&both, "csv", "BTC", Interval::H1, &[Interval::H4]), at(12 * H, Some(12 * H)));
        // No aggregated candle at all: rebuilt from the first bar.
        assert_eq!(
            resume_point(&last(&[(Interval::H1, 10 * H)]), "csv", "BTC", Interval::H1, &[Interval::H4]),
            at(11 * H, None)
        );
    }
}
