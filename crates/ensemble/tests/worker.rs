//! The ensemble handler through a real Redis: one decision per profile per candle, deadlines
//! fired by the runner's tick for a model that never answers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tradeflow_bus::{Consumer, Producer, Topology};
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::decision::{Decision, Trigger};
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::Action;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_ensemble::worker::{EnsembleFactory, EnsembleMetrics};
use tradeflow_inference::{InferenceStage, StageConfig};
use tradeflow_testkit::{TestRedis, envelopes};

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_for_every_profile_including_a_model_that_never_answers() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "ensemble-test");

    // 300 candles of two symbols → signals of every rule model on inf.signals.
    let mut inference = InferenceStage::new(Arc::new(StageConfig::every_rule()));
    let file = std::fs::File::open(DEMO).unwrap();
    let bars: Vec<_> =
        CandleReader::new(std::io::BufReader::new(file)).unwrap().bars().take(300).map(Result::unwrap).collect();
    let mut batch = Vec::new();
    for symbol in ["BTCUSD", "ETHUSD"] {
        for bar in &bars {
            let candle = Candle {
                source: "csv".into(),
                symbol: symbol.into(),
                interval: Interval::H1,
                bar: *bar,
                aggregated: false,
            };
            for s in inference.on_candle(&candle).unwrap() {
                batch.push(producer.prepare("inf.signals", &s.id(), &s.symbol, None, &s).unwrap());
            }
        }
    }
    producer.send(&batch).await.unwrap();

    let profiles = parse_profiles(
        r#"
[[profile]]
name = "committee"
models = { rsi = 1.0, macd = 1.0, bollinger = 1.0, stochastic = 1.0 }
method = "weighted_vote"

[[profile]]
name = "with-llm"
models = { technical = 1.0, gpt = 1.0 }
method = "unanimous"
deadline_ms = 300
"#,
    )
    .unwrap();
    let registry = prometheus::Registry::new();
    let factory = EnsembleFactory {
        profiles: Arc::new(profiles),
        producer: producer.clone(),
        metrics: EnsembleMetrics::register(&registry).unwrap(),
        tick: Duration::from_millis(50),
    };
    let consumer = Consumer::new(bus.clone(), "inf.signals", "ensemble", "ensemble-test", factory).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));

    let expected = 2 * 300 * 2;
    let deadline = Instant::now() + Duration::from_secs(30);
    let decisions: Vec<Decision> = loop {
        let all: Vec<Decision> = envelopes(&bus, "ens.decisions").await.iter().map(|e| e.open().unwrap()).collect();
        if all.len() >= expected || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(decisions.len(), expected);
    let ids: HashSet<String> = decisions.iter().map(|d| d.id().to_string()).collect();
    assert_eq!(ids.len(), expected, "no decision twice");
    for d in &decisions {
        match d.profile.as_str() {
            "committee" => assert_eq!(d.trigger, Trigger::Complete),
            "with-llm" => {
                assert_eq!(d.trigger, Trigger::Deadline, "gpt never answers: decided at the deadline");
                assert_eq!(d.missing, vec!["gpt".to_string()]);
                assert_eq!(d.contributions.len(), 1, "{d:?}");
                assert_eq!(d.action == Action::Hold, d.contributions[0].action == Action::Hold, "{d:?}");
            }
            other => panic!("unknown profile {other}"),
        }
    }
    let text = tradeflow_bus::metrics::render(&registry);
    assert!(text.contains("tradeflow_ensemble_decisions_total{action="), "{text}");
}
