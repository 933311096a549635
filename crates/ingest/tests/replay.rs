//! CSV replay into a real Redis: every good bar becomes a candle, bad ones become refusals on
//! audit.events, and the good bars around them still arrive.

use std::io::Write;

use tokio_util::sync::CancellationToken;
use tradeflow_bus::{Producer, Topology};
use tradeflow_core::market::{Candle, CandleRefused, Interval};
use tradeflow_ingest::IngestStage;
use tradeflow_ingest::replay::{Feed, IngestMetrics, Pace, ReplayConfig, replay};
use tradeflow_testkit::TestRedis;

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_feed_and_a_damaged_file_replay_with_refusals_audited() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "ingest-test");
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("eth.csv");
    let mut f = std::fs::File::create(&damaged).unwrap();
    writeln!(f, "timestamp,open,high,low,close,volume").unwrap();
    writeln!(f, "0,10,11,9,10,1").unwrap();
    writeln!(f, "3600000,10,9,11,10,1").unwrap(); // high < low
    writeln!(f, "3600000,10,11,9,10.5,1").unwrap();
    writeln!(f, "7200000,10,11,9,oops,1").unwrap(); // not a number
    writeln!(f, "7200000,10,11,9,10,NaN").unwrap();
    writeln!(f, "0,10,11,9,10,1").unwrap(); // backwards
    writeln!(f, "7200000,10,11,9,10,2").unwrap();
    writeln!(f, "7200000,10,11,9,10,2").unwrap(); // repeated: same id, not a second candle
    writeln!(f, "10800000,10,12,9,11,3").unwrap();
    drop(f);

    let config = ReplayConfig {
        feeds: vec![Feed::csv(DEMO, "BTCUSD", Interval::H1), Feed::csv(damaged, "ETHUSD", Interval::H1)],
        pace: Pace::Fast,
        passes: 1,
        source: "csv".into(),
        resume: true,
    };
    let mut stage = IngestStage::new(&[(Interval::H1, Interval::H4)]).unwrap();
    let metrics = IngestMetrics::register(&prometheus::Registry::new()).unwrap();
    let report = replay(&producer, &mut stage, &config, &metrics, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.refused, 4, "{report:?}");
    assert_eq!(report.duplicates, 1, "{report:?}");

    let candles: Vec<Candle> =
        tradeflow_testkit::envelopes(&bus, "md.candles").await.iter().map(|e| e.open::<Candle>().unwrap()).collect();
    let hourly_btc = candles.iter().filter(|c| c.symbol == "BTCUSD" && c.interval == Interval::H1).count();
    assert_eq!(hourly_btc, 20_111);
    let eth: Vec<(i64, f64)> = candles
        .iter()
        .filter(|c| c.symbol == "ETHUSD" && c.interval == Interval::H1)
        .map(|c| (c.bar.open_time(), c.bar.close()))
        .collect();
    assert_eq!(eth, vec![(0, 10.0), (3_600_000, 10.5), (7_200_000, 10.0), (10_800_000, 11.0)]);
    let eth_4h: Vec<&Candle> = candles.iter().filter(|c| c.symbol == "ETHUSD" && c.interval == Interval::H4).collect();
    assert_eq!(eth_4h.len(), 1);
    assert!(eth_4h[0].aggregated);
    assert_eq!((eth_4h[0].bar.high(), eth_4h[0].bar.low(), eth_4h[0].bar.volume()), (12.0, 9.0, 7.0));
    let ids: std::collections::HashSet<String> = candles.iter().map(|c| c.id().to_string()).collect();
    assert_eq!(ids.len(), candles.len(), "no candle id twice");
    assert_eq!(report.candles as usize, candles.len());

    let refusals: Vec<CandleRefused> = tradeflow_testkit::envelopes(&bus, "audit.events")
        .await
        .iter()
        .map(|e| e.open::<CandleRefused>().unwrap())
        .collect();
    let mut reasons: Vec<String> = refusals.iter().map(|r| format!("{}: {}", r.kind.as_str(), r.reason)).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4);
    assert!(reasons[0].starts_with("invalid_bar: high 9 is below low 11"), "{reasons:?}");
    assert!(reasons[1].starts_with("invalid_bar: volume is NaN"), "{reasons:?}");
    assert!(reasons[2].contains("eth.csv: line 5, column `close`: \"oops\" is not a number"), "{reasons:?}");
    assert!(reasons[3].starts_with("time_backwards: open time 0 is before"), "{reasons:?}");
}

/// The producer rides out Redis: SIGKILLed and restarted twice during a paced replay, the
/// replay never fails, and every bar is on `md.candles` (a batch cut off mid-send is sent again
/// with the same ids, which consumers skip; the count of such entries is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_rides_out_two_redis_restarts_and_loses_nothing() {
    let mut redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let metrics = tradeflow_bus::BusMetrics::unregistered();
    let producer = Producer::new(bus.clone(), "ingest-test").with_metrics(metrics.clone());
    let config = ReplayConfig {
        feeds: vec![Feed::csv(DEMO, "BTCUSD", Interval::H1)],
        // About 3.4 s for the 20,111 bars: the restarts below land in the middle.
        pace: Pace::Rate(6_000.0),
        passes: 1,
        source: "csv".into(),
        resume: true,
    };
    let task = tokio::spawn(async move {
        let mut stage = IngestStage::new(&[]).unwrap();
        let metrics = IngestMetrics::register(&prometheus::Registry::new()).unwrap();
        replay(&producer, &mut stage, &config, &metrics, &CancellationToken::new()).await
    });
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        assert!(!task.is_finished(), "the replay ended before Redis was killed");
        redis.kill().await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        redis.restart().await;
    }
    let report = task.await.unwrap().expect("the replay rides out the restarts");
    assert_eq!(report.candles, 20_111, "{report:?}");
    assert!(metrics.send_retries.get() > 0, "no batch was held: the kills missed the replay");

    let envelopes = tradeflow_testkit::envelopes(&bus, "md.candles").await;
    let ids: std::collections::HashSet<String> = envelopes.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 20_111, "every bar on md.candles once or more");
    println!(
        "held batches: {}; entries {} for {} candles ({} sent twice)",
        metrics.send_retries.get(),
        envelopes.len(),
        ids.len(),
        envelopes.len() - ids.len()
    );
}

fn demo_config(pace: Pace) -> ReplayConfig {
    ReplayConfig {
        feeds: vec![Feed::csv(DEMO, "BTCUSD", Interval::H1)],
        pace,
        passes: 1,
        source: "csv".into(),
        resume: true,
    }
}

async fn replay_demo(bus: &tradeflow_bus::Bus, config: &ReplayConfig) -> tradeflow_ingest::replay::ReplayReport {
    let producer = Producer::new(bus.clone(), "ingest-test");
    let mut stage = IngestStage::new(&[(Interval::H1, Interval::H4)]).unwrap();
    let metrics = IngestMetrics::register(&prometheus::Registry::new()).unwrap();
    replay(&producer, &mut stage, config, &metrics, &CancellationToken::new()).await.unwrap()
}

/// Every candle of `md.candles` by id, each copy checked to be the same candle.
async fn candles_by_id(bus: &tradeflow_bus::Bus) -> (std::collections::BTreeMap<String, Candle>, usize) {
    let envelopes = tradeflow_testkit::envelopes(bus, "md.candles").await;
    let mut by_id = std::collections::BTreeMap::new();
    for e in &envelopes {
        let c: Candle = e.open().unwrap();
        if let Some(before) = by_id.insert(e.id.clone(), c.clone()) {
            assert_eq!(before, c, "{} sent twice with other values", e.id);
        }
    }
    (by_id, envelopes.len())
}

/// Deletes the newest `entries` entries of the partition holding `symbol` on md.candles: the
/// tail a crash of Redis's machine takes with it under `appendfsync everysec`.
async fn lose_tail(bus: &tradeflow_bus::Bus, symbol: &str, entries: usize) -> usize {
    let spec = bus.topology().stream("md.candles").unwrap();
    let p = tradeflow_bus::keys::partition_of(symbol, spec.partitions);
    let tail = tradeflow_bus::tap::read_back(bus, "md.candles", p, None, entries).await.unwrap();
    let mut conn = bus.conn();
    let mut cmd = redis::cmd("XDEL");
    cmd.arg(bus.keys().partition("md.candles", p));
    for e in &tail {
        cmd.arg(e.id.to_string());
    }
    let _: u64 = cmd.query_async(&mut conn).await.unwrap();
    tail.iter().map(|e| tradeflow_bus::pack::messages(e).unwrap().len()).sum()
}

/// A second replay over the same stream sends nothing; after the stream lost its tail, a replay
/// sends what is missing and no more (the raw bars of a half-built 4h bucket go through the
/// stage again, not onto the stream): the candles, 4h ones included, are those of a clean run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_resumes_after_the_last_candle_on_the_stream() {
    let redis = TestRedis::start().await;
    let clean = redis.bus(Topology::load(STREAMS).unwrap().with_namespace("clean").unwrap()).await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let config = demo_config(Pace::Fast);
    replay_demo(&clean, &config).await;
    let (expected, _) = candles_by_id(&clean).await;

    let first = replay_demo(&bus, &config).await;
    assert_eq!((first.already_sent, first.candles as usize), (0, expected.len()), "{first:?}");
    let again = replay_demo(&bus, &config).await;
    assert_eq!((again.candles, again.already_sent), (0, 20_111), "a second replay sends nothing: {again:?}");

    let lost = lose_tail(&bus, "BTCUSD", 3).await;
    assert!(lost > 0);
    let resumed = replay_demo(&bus, &config).await;
    let (got, entries) = candles_by_id(&bus).await;
    assert_eq!(got.len(), expected.len(), "{resumed:?}");
    assert_eq!(got, expected, "the resumed stream holds the clean run's candles");
    // Nothing twice: the raw bars of the half-built 4h bucket went through the stage again,
    // not onto the stream.
    assert_eq!(entries, got.len(), "{resumed:?}");
    assert!(resumed.already_sent > 0 && resumed.candles as usize >= lost, "{resumed:?} after {lost} lost");
    println!("lost {lost} candles; the resumed replay sent {} ({} twice)", resumed.candles, entries - got.len());

    // --from-start: every bar again, all of them repeats.
    let all = replay_demo(&bus, &ReplayConfig { resume: false, ..config }).await;
    assert_eq!((all.candles as usize, all.already_sent), (expected.len(), 0));
}

/// Redis SIGKILLed mid-replay comes back without the tail of its append-only file (what a
/// crash of its machine does under `appendfsync everysec`): the replay, whose held send meets
/// a stream that lacks bars it had acknowledged, goes back to them; nothing is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_redis_lost_with_its_machine_are_sent_again() {
    let mut redis = TestRedis::start().await;
    let clean = redis.bus(Topology::load(STREAMS).unwrap().with_namespace("clean").unwrap()).await;
    replay_demo(&clean, &demo_config(Pace::Fast)).await;
    let (expected, _) = candles_by_id(&clean).await;
    let aof_dir = redis.dir().join("appendonlydir");
    let incr = std::fs::read_dir(&aof_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .unwrap_or_else(|| panic!("no .incr.aof in {}", aof_dir.display()));
    let before = std::fs::metadata(&incr).unwrap().len();

    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let config = demo_config(Pace::Rate(6_000.0));
    let task = tokio::spawn({
        let bus = bus.clone();
        async move { replay_demo(&bus, &config).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(!task.is_finished(), "the replay ended before Redis was killed");
    redis.kill().await;
    // The newer half of what this replay wrote to the append-only file is gone, as if it had
    // never reached the disk.
    let len = std::fs::metadata(&incr).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&incr).unwrap().set_len(before + (len - before) / 2).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    redis.restart().await;
    eprintln!(
        "DEBUG len {len} before {before} after restart: {} messages",
        tradeflow_testkit::message_count(&bus, "md.candles").await
    );
    let report = task.await.unwrap();
    assert!(report.rewinds >= 1, "the replay did not go back: {report:?}");
    let (got, entries) = candles_by_id(&bus).await;
    assert_eq!(got, expected, "every candle of a clean run, 4h ones included: {report:?}");
    println!("{report:?}; {entries} entries for {} candles", got.len());
}

#[test]
fn paces_parse_with_clear_errors() {
    assert_eq!("fast".parse::<Pace>(), Ok(Pace::Fast));
    assert_eq!("x60".parse::<Pace>(), Ok(Pace::Speedup(60.0)));
    assert_eq!("100/s".parse::<Pace>(), Ok(Pace::Rate(100.0)));
    assert!("x0".parse::<Pace>().unwrap_err().contains("positive"));
    assert!("slow".parse::<Pace>().unwrap_err().contains("expected `fast`"));
}
