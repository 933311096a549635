//! The edge's streams, dead-letter and monitoring routes against a running pipeline: stream
//! listings, configuration and health, the system summary, measured rates, dead letters made
//! the way production makes them (a consumer meets garbage) then listed, replayed and purged,
//! the pipeline's health, and alerts from both sources through acknowledge and resolve.

mod edge_common;

use std::time::{Duration, Instant};

use edge_common::Edge;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tradeflow_audit::AuditLogRow;
use tradeflow_bus::envelope::ENVELOPE_FIELD;
use tradeflow_bus::{EnvelopeRef, Producer};
use tradeflow_core::ids::MessageId;
use tradeflow_core::order::AccountAlert;
use tradeflow_core::payload::Payload;

const SYS: &str = "sys.events";

/// An alert as a worker would put it on sys.events.
#[derive(Debug, Serialize, Deserialize)]
struct TestAlert {
    severity: String,
    message: String,
}

impl Payload for TestAlert {
    const KIND: &'static str = "test_alert";
    const VERSION: u16 = 1;
}

/// A heartbeat on sys.events: not an alert.
#[derive(Debug, Serialize, Deserialize)]
struct TestHeartbeat {
    service: String,
}

impl Payload for TestHeartbeat {
    const KIND: &'static str = "heartbeat";
    const VERSION: u16 = 1;
}

/// A consumer handler that takes every envelope: only undecodable entries are dead-lettered.
struct Accept;
struct AcceptHandler;
impl tradeflow_bus::Handler for AcceptHandler {
    type Msg = ();
    fn decode(&self, _env: &EnvelopeRef<'_>) -> Result<(), tradeflow_bus::DecodeError> {
        Ok(())
    }
    async fn handle(&mut self, _d: &tradeflow_bus::Delivery<()>) -> tradeflow_bus::Outcome {
        tradeflow_bus::Outcome::Done
    }
}
impl tradeflow_bus::HandlerFactory for Accept {
    type Handler = AcceptHandler;
    fn create(&self, _p: u32, _r: Option<&[u8]>) -> Result<AcceptHandler, String> {
        Ok(AcceptHandler)
    }
}

async fn redis(edge: &Edge) -> redis::aio::MultiplexedConnection {
    redis::Client::open(edge.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn xadd_garbage(edge: &Edge, n: usize) {
    let mut c = redis(edge).await;
    let key = edge.bus.keys().partition(SYS, 0);
    for i in 0..n {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg(ENVELOPE_FIELD)
            .arg(format!("garbage-{i}"))
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

async fn dlq_total(edge: &Edge) -> u64 {
    tradeflow_bus::dlq::Dlq::new(&edge.bus).stats(SYS).await.unwrap().total
}

/// Runs a `monitor` consumer on sys.events until the DLQ holds `want` dead letters.
async fn dead_letter_until(edge: &Edge, want: u64) {
    let consumer = tradeflow_bus::Consumer::new(edge.bus.clone(), SYS, "monitor", "edge-test", Accept).unwrap();
    let stop = CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while dlq_total(edge).await < want {
        assert!(Instant::now() < deadline, "dead letters did not appear");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(dlq_total(edge).await, want);
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s[key].as_str().unwrap().to_string()).collect()
}

fn rate_of<'a>(m: &'a Value, stream: &str) -> &'a Value {
    m["streams"].as_array().unwrap().iter().find(|s| s["stream"] == stream).unwrap()
}

/// Waits until the audit log holds a row of each of `actions`; returns the first of each.
async fn wait_audited(edge: &Edge, actions: &[&str]) -> Vec<AuditLogRow> {
    let store = edge.store().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = store.rows(tradeflow_audit::Table::Audit, 10_000, 0).await.unwrap();
        let find = |action: &str| {
            rows.iter().find_map(|r| match r {
                tradeflow_audit::Row::Audit(a) if a.action == action => Some(a.clone()),
                _ => None,
            })
        };
        let found: Vec<Option<AuditLogRow>> = actions.iter().map(|a| find(a)).collect();
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
        assert!(Instant::now() < deadline, "mutations missing from the audit log after 20 s: wanted {actions:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id of the account alert the tests publish and resolve.
const ACCOUNT_ALERT: &str = "test-cause/alpha/circuit_breaker";
/// The replay route of sys.events' dead letters.
const REPLAY: &str = "/api/v1/streams/sys.events/dlq/replay";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_of_a_running_pipeline() {
    let edge = Edge::start().await;
    let viewer = Some(edge.viewer.as_str());

    // ---- Monitoring health with the pipeline running: healthy, every stage has workers.
    let h = edge.get("/api/v1/monitoring/health", viewer).await.expect(200);
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["redis"]["ok"], true);
    assert_eq!(h["database"]["ok"], true);
    assert_eq!(names(&h["stages"], "stage"), ["inference", "ensemble", "risk", "exec", "audit"]);
    for s in h["stages"].as_array().unwrap() {
        assert_eq!(s["status"], "ok", "{s}");
        assert!(s["live_workers"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["lag"].as_u64().unwrap() < 1000, "{s}");
        assert!(!s["workers"].as_array().unwrap().is_empty(), "{s}");
    }
    assert_eq!(h["stages"][0]["lag"], 0, "inference has drained");
    let audit = h["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "audit").unwrap();
    // What the audit group reads is streams.toml's to say: md.news included.
    let mut read: Vec<&str> =
        audit["streams"].as_array().unwrap().iter().map(|s| s["stream"].as_str().unwrap()).collect();
    read.sort();
    assert_eq!(
        read,
        [
            "audit.events",
            "ctl.commands",
            "ens.decisions",
            "exec.fills",
            "inf.signals",
            "jobs.events",
            "jobs.requests",
            "md.candles",
            "md.news",
            "risk.orders"
        ]
    );
    assert_eq!(h["dlq_messages"], 0);
    assert_eq!(h["thresholds"]["lag_degraded"], 1000);
    assert!(h["reasons"].as_array().unwrap().is_empty(), "{h}");
    edge.check_roles(Method::GET, "/api/v1/monitoring/health", None, "viewer").await;

    // ---- The system summary.
    let sys = edge.get("/api/v1/health/streams", viewer).await.expect(200);
    assert_eq!(sys["total_streams"], 11);
    // md.news has one partition; jobs.requests 8 (groups jobs, audit), jobs.events 2.
    assert_eq!(sys["total_partitions"], 8 * 6 + 1 + 1 + 1 + 8 + 2);
    assert_eq!(sys["total_groups"], 14 + 2 + 1);
    assert_eq!(sys["dlq_messages"], 0);
    assert!(sys["total_length"].as_u64().unwrap() >= 1200 / 64);
    assert_eq!(sys["streams"].as_array().unwrap().len(), 11);
    assert!(sys["issues"].as_array().unwrap().iter().all(|i| i["code"] != "dead_letters"), "{sys}");
    assert!(["healthy", "degraded"].contains(&sys["status"].as_str().unwrap()), "{sys}");
    edge.check_roles(Method::GET, "/api/v1/health/streams", None, "viewer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_list_configuration_and_health() {
    let edge = Edge::start().await;
    let (viewer, trader, admin) = (Some(edge.viewer.as_str()), Some(edge.trader.as_str()), Some(edge.admin.as_str()));

    // ---- The stream list, a configuration, a stream's health.
    let list = edge.get("/api/v1/streams", viewer).await.expect(200);
    assert_eq!(list["total"], 11);
    assert_eq!(
        names(&list["streams"], "name"),
        [
            "audit.events",
            "ctl.commands",
            "ens.decisions",
            "exec.fills",
            "inf.signals",
            "jobs.events",
            "jobs.requests",
            "md.candles",
            "md.news",
            "risk.orders",
            SYS
        ]
    );
    let candles = list["streams"].as_array().unwrap().iter().find(|s| s["name"] == "md.candles").unwrap();
    assert_eq!(candles["partitions"], 8);
    assert_eq!(candles["groups"], json!(["inference", "audit"]));
    // Entries: 1,200 candles packed by at most 64 (streams.toml pack_max) take at least 19.
    assert!(candles["length"].as_u64().unwrap() >= 1200 / 64, "{candles}");
    assert_eq!(candles["lag"], 0);
    assert_eq!(candles["dlq_length"], 0);
    assert_eq!(candles["status"], "healthy", "{candles}");
    edge.check_roles(Method::GET, "/api/v1/streams", None, "viewer").await;

    let config = edge.get("/api/v1/streams/md.candles/config", viewer).await.expect(200);
    assert_eq!(config["partitions"], 8);
    assert_eq!(config["key"], "symbol");
    assert_eq!(config["max_deliveries"], 5);
    assert_eq!(config["retry_backoff_ms"], 200);
    assert_eq!(config["redis_keys"][3], "tf:{md.candles:3}");
    assert_eq!(config["dlq_keys"][3], "tf:{md.candles:3}:dlq");
    assert_eq!(config["fleet_lease_ttl_ms"], 5000);
    assert_eq!(
        config["group_settings"],
        json!([
            {"group": "inference", "linger_ms": 0, "batch_max": 512},
            {"group": "audit", "linger_ms": 100, "batch_max": 8192},
        ])
    );
    let ctl = edge.get("/api/v1/streams/ctl.commands/config", viewer).await.expect(200);
    assert_eq!(ctl["partitions"], 1);

    let sh = edge.get("/api/v1/streams/md.candles/health", viewer).await.expect(200);
    assert_eq!(sh["stream"], "md.candles");
    assert_eq!(sh["status"], "healthy", "{sh}");
    assert_eq!(sh["length"], candles["length"]);
    assert_eq!(sh["partitions"].as_array().unwrap().len(), 8);
    let inference = sh["groups"].as_array().unwrap().iter().find(|g| g["group"] == "inference").unwrap();
    assert!(!inference["live_workers"].as_array().unwrap().is_empty(), "{inference}");
    assert_eq!(inference["lag"], 0);
    assert_eq!(inference["lag_known"], true);
    let p0 = &sh["partitions"][0];
    assert_eq!(p0["exists"], true);
    assert!(p0["groups"].as_array().unwrap().iter().all(|g| g["exists"] == true && g["pending"] == 0));
    let lengths: u64 = sh["partitions"].as_array().unwrap().iter().map(|p| p["length"].as_u64().unwrap()).sum();
    assert_eq!(lengths, sh["length"].as_u64().unwrap());

    // ---- Unknown streams: 404 in the error format on every route, whatever the role.
    for path in [
        "/api/v1/streams/no.such/config",
        "/api/v1/streams/no.such/health",
        "/api/v1/streams/no.such/dlq/stats",
        "/api/v1/streams/no.such/dlq/messages",
    ] {
        let e = edge.get(path, viewer).await.expect_error(404, "not_found");
        assert_eq!(e["error"]["details"]["name"], "no.such", "{e}");
    }
    edge.post("/api/v1/streams/no.such/dlq/replay", trader, Some(json!({"all": true})))
        .await
        .expect_error(404, "not_found");
    edge.delete("/api/v1/streams/no.such/dlq", admin).await.expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_are_measured() {
    let edge = Edge::start().await;
    let viewer = Some(edge.viewer.as_str());
    let list = edge.get("/api/v1/streams", viewer).await.expect(200);
    let candles = list["streams"].as_array().unwrap().iter().find(|s| s["name"] == "md.candles").unwrap();

    // ---- Rates: measured, so they move with the traffic.
    // (A rate needs a base sample at least a second old; the edge took one when it started.)
    // (The edge measures real time in its own process: this waits for the condition, polling.)
    let deadline = Instant::now() + Duration::from_secs(20);
    let m1 = loop {
        let m = edge.get("/api/v1/streams/metrics?window_s=600", viewer).await.expect(200);
        if rate_of(&m, SYS)["measured_over_s"].as_f64().unwrap() >= 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no rate measured over a second within 20 s: {}", rate_of(&m, SYS));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(m1["window_s"], 600);
    assert_eq!(m1["streams"].as_array().unwrap().len(), 11);
    let candles_rate = rate_of(&m1, "md.candles");
    assert_eq!(candles_rate["length"], candles["length"]);
    assert!(candles_rate["entries_added"].as_u64().unwrap() >= 1200 / 64);
    assert!(candles_rate["measured_over_s"].as_f64().unwrap() > 0.0, "{candles_rate}");
    let before = rate_of(&m1, SYS).clone();
    assert_eq!(before["added"], 0, "nothing was put on sys.events yet: {before}");
    assert_eq!(before["messages_per_minute"], 0.0, "{before}");
    xadd_garbage(&edge, 3).await;
    let m2 = edge.get("/api/v1/streams/metrics?window_s=600", viewer).await.expect(200);
    let after = rate_of(&m2, SYS);
    assert_eq!(after["added"], 3, "{after}");
    assert!(after["messages_per_minute"].as_f64().unwrap() > 0.0, "{after}");
    assert_eq!(edge.get("/api/v1/streams/metrics", viewer).await.expect(200)["window_s"], 60);
    for bad in ["window_s=5", "window_s=601", "window_s=abc", "window_s=-1"] {
        edge.get(&format!("/api/v1/streams/metrics?{bad}"), viewer).await.expect_error(400, "invalid_query");
    }
    edge.check_roles(Method::GET, "/api/v1/streams/metrics", None, "viewer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_listed_replayed_and_purged() {
    let edge = Edge::start().await;
    let (viewer, trader, admin) = (Some(edge.viewer.as_str()), Some(edge.trader.as_str()), Some(edge.admin.as_str()));
    xadd_garbage(&edge, 3).await;

    // ---- Dead letters: the garbage meets a consumer and is dead-lettered.
    dead_letter_until(&edge, 3).await;
    let stats = edge.get("/api/v1/streams/sys.events/dlq/stats", viewer).await.expect(200);
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["by_reason"]["decode_error"], 3);
    assert_eq!(stats["by_partition"]["0"], 3);
    assert!(stats["oldest_failed_at"].as_i64().unwrap() <= stats["newest_failed_at"].as_i64().unwrap());
    let empty = edge.get("/api/v1/streams/md.candles/dlq/stats", viewer).await.expect(200);
    assert_eq!(empty["total"], 0);

    let page = edge.get("/api/v1/streams/sys.events/dlq/messages?limit=2", viewer).await.expect(200);
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    let msgs = page["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    let d = &msgs[0];
    assert_eq!(d["dead_letter_reason"], "decode_error");
    assert_eq!(d["original_stream"], SYS);
    assert_eq!(d["service_name"], "edge-test");
    assert_eq!(d["group"], "monitor");
    assert_eq!(d["partition"], 0);
    assert!(d["payload"].is_object(), "{d}");
    let first_id = d["id"].as_str().unwrap().to_string();
    assert!(first_id.starts_with("0/"), "{first_id}");
    let rest = edge.get("/api/v1/streams/sys.events/dlq/messages?limit=2&offset=2", viewer).await.expect(200);
    assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
    assert_ne!(rest["messages"][0]["id"], first_id);
    let past = edge.get("/api/v1/streams/sys.events/dlq/messages?offset=50", viewer).await.expect(200);
    assert!(past["messages"].as_array().unwrap().is_empty());
    for bad in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "offset=x", "limit=1.5"] {
        edge.get(&format!("/api/v1/streams/sys.events/dlq/messages?{bad}"), viewer)
            .await
            .expect_error(400, "invalid_query");
    }
    edge.check_roles(Method::GET, "/api/v1/streams/sys.events/dlq/messages", None, "viewer").await;
    edge.check_roles(Method::GET, "/api/v1/streams/sys.events/dlq/stats", None, "viewer").await;

    // Dead letters make the pipeline degraded (still 200) and show as an issue.
    let h = edge.get("/api/v1/monitoring/health", viewer).await.expect(200);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["dlq_messages"], 3);
    assert!(h["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("dead letter")), "{h}");
    let sys = edge.get("/api/v1/health/streams", viewer).await.expect(200);
    assert_eq!(sys["dlq_messages"], 3);
    assert_ne!(sys["status"], "healthy");
    assert!(sys["issues"].as_array().unwrap().iter().any(|i| i["code"] == "dead_letters" && i["stream"] == SYS));
    let sh = edge.get("/api/v1/streams/sys.events/health", viewer).await.expect(200);
    assert_eq!(sh["status"], "degraded");
    assert_eq!(sh["dlq_length"], 3);

    // ---- Replay: roles, then every kind of bad body is a 4xx naming the problem.
    let replay = REPLAY;
    edge.check_roles(Method::POST, replay, Some(json!({"all": true})), "trader").await;
    for (body, field) in [
        (json!({}), "ids|all|reason"),
        (json!({"all": true, "reason": "decode_error"}), "ids|all|reason"),
        (json!({"ids": [first_id], "all": true}), "ids|all|reason"),
        (json!({"ids": []}), "ids"),
        (json!({"ids": ["nonsense"]}), "ids[0]"),
        (json!({"ids": [first_id, "9/1-0"]}), "ids[1]"),
        (json!({"ids": ["x/1-0"]}), "ids[0]"),
        (json!({"reason": "bogus"}), "reason"),
        (json!({"all": false}), "all"),
    ] {
        let e = edge.post(replay, trader, Some(body.clone())).await.expect_error(422, "invalid_body");
        assert_eq!(e["error"]["details"]["field"], field, "{body} → {e}");
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("0/{i}-0")).collect();
    edge.post(replay, trader, Some(json!({ "ids": too_many }))).await.expect_error(422, "invalid_body");
    for body in [json!({"ids": "0/1-0"}), json!({"all": "yes"}), json!({"reason": 5}), json!({"bogus": 1}), json!([1])]
    {
        edge.post(replay, trader, Some(body)).await.expect_error(422, "invalid_body");
    }
    let raw = edge
        .client
        .post(edge.url(replay))
        .bearer_auth(&edge.trader)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // On a connection of its own: see `Edge::call_once`.
    let big = edge_common::once_client()
        .post(edge.url(replay))
        .bearer_auth(&edge.trader)
        .header("content-type", "application/json")
        .body(format!("{{\"reason\": \"{}\"}}", "x".repeat(70_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let no_type = edge.client.post(edge.url(replay)).bearer_auth(&edge.trader).body("{}").send().await.unwrap();
    assert_eq!(no_type.status(), 415);
    assert_eq!(dlq_total(&edge).await, 3, "refused requests replay nothing");

    // Replay one by id: it is back on its partition and the DLQ count drops.
    let mut c = redis(&edge).await;
    let key = edge.bus.keys().partition(SYS, 0);
    let len_before: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut c).await.unwrap();
    let r = edge.post(replay, trader, Some(json!({"ids": [first_id]}))).await.expect(200);
    assert_eq!(r["selector"], "ids");
    assert_eq!(r["replayed"], json!([first_id]));
    assert_eq!(r["dlq_remaining"], 2);
    assert!(r["not_found"].as_array().unwrap().is_empty());
    let len_after: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut c).await.unwrap();
    assert_eq!(len_after, len_before + 1);
    let last: redis::Value =
        redis::cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1).query_async(&mut c).await.unwrap();
    let last = tradeflow_bus::reply::entries("XREVRANGE", &last).unwrap();
    assert_eq!(last[0].field(ENVELOPE_FIELD), Some(&b"garbage-0"[..]), "the original bytes are back");
    assert_eq!(edge.get("/api/v1/streams/sys.events/dlq/stats", viewer).await.expect(200)["total"], 2);
    // Gone from the DLQ: a second replay of it is a 404.
    let e = edge.post(replay, trader, Some(json!({"ids": [first_id]}))).await.expect_error(404, "not_found");
    assert_eq!(e["error"]["details"]["ids"], json!([first_id]));
    // A reason that matches nothing replays nothing; the right reason replays the rest.
    let none = edge.post(replay, trader, Some(json!({"reason": "max_deliveries"}))).await.expect(200);
    assert_eq!(none["replayed"], json!([]));
    assert_eq!(none["dlq_remaining"], 2);
    let by_reason = edge.post(replay, trader, Some(json!({"reason": "decode_error"}))).await.expect(200);
    assert_eq!(by_reason["selector"], "reason");
    assert_eq!(by_reason["replayed"].as_array().unwrap().len(), 2);
    assert_eq!(by_reason["dlq_remaining"], 0);
    let all = edge.post(replay, admin, Some(json!({"all": true}))).await.expect(200);
    assert_eq!(all["replayed"], json!([]));

    // ---- Purge: the replayed garbage is dead-lettered again, then purged by an admin.
    dead_letter_until(&edge, 3).await;
    let purge = "/api/v1/streams/sys.events/dlq";
    edge.check_roles(Method::DELETE, purge, None, "admin").await;
    assert_eq!(dlq_total(&edge).await, 3, "refused purges delete nothing");
    let p = edge.delete(purge, admin).await.expect(200);
    assert_eq!(p["stream"], SYS);
    assert_eq!(p["purged"], 3);
    assert_eq!(edge.get("/api/v1/streams/sys.events/dlq/stats", viewer).await.expect(200)["total"], 0);
    assert_eq!(edge.delete(purge, admin).await.expect(200)["purged"], 0);
    let h = edge.get("/api/v1/monitoring/health", viewer).await.expect(200);
    assert_eq!(h["status"], "healthy", "{h}");

    // The replay and the purge are in the audit log.
    let found = wait_audited(&edge, &["dlq.replay", "dlq.purge"]).await;
    assert_eq!(found[0].actor, "ops");
    assert_eq!(found[0].resource, "/streams/sys.events/dlq");
    assert_eq!(found[1].actor, "admin");
    assert!(found.iter().all(|a| a.status == "ok" && a.ip.is_some()), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_listed_acknowledged_and_resolved() {
    let edge = Edge::start().await;
    let (viewer, trader, admin) = (Some(edge.viewer.as_str()), Some(edge.trader.as_str()), Some(edge.admin.as_str()));
    let mut c = redis(&edge).await;

    // ---- Alerts: one on sys.events, one from risk's kind through the audit store.
    let producer = Producer::new(edge.bus.clone(), "edge-test");
    let alert = TestAlert { severity: "critical".into(), message: "disk almost full".into() };
    let entry =
        producer.publish(SYS, &MessageId::new("test-alert-1").unwrap(), "edge-test", None, &alert).await.unwrap();
    let beat = TestHeartbeat { service: "edge-test".into() };
    producer.publish(SYS, &MessageId::new("test-beat-1").unwrap(), "edge-test", None, &beat).await.unwrap();
    let account_alert = AccountAlert {
        id: ACCOUNT_ALERT.into(),
        account: "alpha".into(),
        kind: "circuit_breaker".into(),
        message: "daily loss limit reached".into(),
        time: tradeflow_core::time::now_ms(),
    };
    producer
        .publish("audit.events", &MessageId::new("test-account-alert").unwrap(), "alpha", None, &account_alert)
        .await
        .unwrap();
    let sys_id = format!("{SYS}:0/{entry}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let l = edge.get("/api/v1/monitoring/alerts?limit=1000", viewer).await.expect(200);
        let ids = names(&l["alerts"], "id");
        if ids.contains(&sys_id) && ids.contains(&account_alert.id) {
            break l;
        }
        assert!(Instant::now() < deadline, "the alerts were not listed: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let alerts = listed["alerts"].as_array().unwrap();
    assert_eq!(listed["total"].as_u64().unwrap().min(1000) as usize, alerts.len());
    assert!(alerts.iter().all(|a| a["kind"] != "heartbeat"), "a heartbeat is not an alert");
    assert!(alerts.iter().all(|a| ["warning", "error", "critical"].contains(&a["severity"].as_str().unwrap())));
    let times: Vec<i64> = alerts.iter().map(|a| a["time"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let sys_alert = alerts.iter().find(|a| a["id"] == sys_id).unwrap();
    assert_eq!(sys_alert["source"], SYS);
    assert_eq!(sys_alert["severity"], "critical");
    assert_eq!(sys_alert["message"], "disk almost full");
    assert_eq!(sys_alert["kind"], "test_alert");
    assert_eq!(sys_alert["status"], "open");
    let acc = alerts.iter().find(|a| a["id"] == account_alert.id).unwrap();
    assert_eq!(acc["source"], "audit");
    assert_eq!(acc["severity"], "warning");
    assert_eq!(acc["kind"], "circuit_breaker");
    assert_eq!(acc["details"]["account"], "alpha");

    let critical = edge.get("/api/v1/monitoring/alerts?severity=critical", viewer).await.expect(200);
    assert!(critical["alerts"].as_array().unwrap().iter().all(|a| a["severity"] == "critical"));
    assert!(names(&critical["alerts"], "id").contains(&sys_id));
    assert!(!names(&critical["alerts"], "id").contains(&account_alert.id));
    let one = edge.get("/api/v1/monitoring/alerts?limit=1&offset=1", viewer).await.expect(200);
    assert_eq!(one["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(one["total"], listed["total"]);
    assert_eq!(one["alerts"][0]["id"], alerts[1]["id"]);
    for bad in ["severity=loud", "status=gone", "limit=0", "limit=5000", "offset=-3", "limit=ten", "severity=Critical"]
    {
        edge.get(&format!("/api/v1/monitoring/alerts?{bad}"), viewer).await.expect_error(400, "invalid_query");
    }
    edge.check_roles(Method::GET, "/api/v1/monitoring/alerts", None, "viewer").await;

    // Acknowledge then resolve; the states persist in Redis; wrong transitions are 409.
    let ack = format!("/api/v1/monitoring/alerts/{}/acknowledge", enc(&sys_id));
    let resolve = format!("/api/v1/monitoring/alerts/{}/resolve", enc(&sys_id));
    edge.check_roles(Method::POST, &ack, None, "trader").await;
    edge.post("/api/v1/monitoring/alerts/no-such-alert/acknowledge", trader, None).await.expect_error(404, "not_found");
    edge.post(&format!("/api/v1/monitoring/alerts/{}/resolve", enc("sys.events:0/1-0")), trader, None)
        .await
        .expect_error(404, "not_found");
    edge.post(&ack, trader, Some(json!({"note": "x".repeat(1001)}))).await.expect_error(422, "invalid_body");
    edge.post(&ack, trader, Some(json!({"note": 5}))).await.expect_error(422, "invalid_body");
    edge.post(&ack, trader, Some(json!({"notes": "typo"}))).await.expect_error(422, "invalid_body");
    let a = edge.post(&ack, trader, Some(json!({"note": "looking"}))).await.expect(200);
    assert_eq!(a["status"], "acknowledged");
    assert_eq!(a["acknowledged_by"], "ops");
    assert!(a["acknowledged_at"].is_i64());
    assert_eq!(a["note"], "looking");
    edge.post(&ack, trader, None).await.expect_error(409, "conflict");
    let acked = edge.get("/api/v1/monitoring/alerts?status=acknowledged", viewer).await.expect(200);
    assert_eq!(names(&acked["alerts"], "id"), std::slice::from_ref(&sys_id));
    let open = edge.get("/api/v1/monitoring/alerts?status=open", viewer).await.expect(200);
    assert!(!names(&open["alerts"], "id").contains(&sys_id));
    assert!(names(&open["alerts"], "id").contains(&account_alert.id));
    let r = edge.post(&resolve, trader, None).await.expect(200);
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["resolved_by"], "ops");
    assert_eq!(r["acknowledged_by"], "ops", "the acknowledgement is kept");
    assert_eq!(r["note"], "looking");
    edge.post(&resolve, trader, None).await.expect_error(409, "conflict");
    edge.post(&ack, trader, None).await.expect_error(409, "conflict");
    // An open alert resolves directly; its id holds slashes.
    let acc_resolve = format!("/api/v1/monitoring/alerts/{}/resolve", enc(&account_alert.id));
    assert_eq!(edge.post(&acc_resolve, admin, None).await.expect(200)["status"], "resolved");
    let resolved = edge.get("/api/v1/monitoring/alerts?status=resolved", viewer).await.expect(200);
    let mut ids = names(&resolved["alerts"], "id");
    ids.sort();
    let mut want = vec![sys_id.clone(), account_alert.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    let stored: Option<String> =
        redis::cmd("HGET").arg("tf:{edge}:alerts").arg(&sys_id).query_async(&mut c).await.unwrap();
    let stored: Value = serde_json::from_str(&stored.expect("the state is kept in Redis")).unwrap();
    assert_eq!(stored["status"], "resolved");

    // The acknowledgement and the resolution are in the audit log.
    let found = wait_audited(&edge, &["alert.acknowledge", "alert.resolve"]).await;
    assert_eq!(found[0].resource, format!("/monitoring/alerts/{sys_id}"));
    assert!(found.iter().all(|a| a.status == "ok" && a.ip.is_some()), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_health_and_reads_answer_503() {
    let mut edge = Edge::start().await;
    let (v, t) = (edge.viewer.clone(), edge.trader.clone());
    let (viewer, trader) = (Some(v.as_str()), Some(t.as_str()));
    let replay = REPLAY;
    let acc_resolve = format!("/api/v1/monitoring/alerts/{}/resolve", enc(ACCOUNT_ALERT));
    // An alert the edge knows (from the audit store): resolving it needs Redis, where the
    // states are kept. (An unknown one is a 404 without asking Redis.)
    let account_alert = AccountAlert {
        id: ACCOUNT_ALERT.into(),
        account: "alpha".into(),
        kind: "circuit_breaker".into(),
        message: "daily loss limit reached".into(),
        time: tradeflow_core::time::now_ms(),
    };
    Producer::new(edge.bus.clone(), "edge-test")
        .publish("audit.events", &MessageId::new("test-account-alert").unwrap(), "alpha", None, &account_alert)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = edge.get("/api/v1/monitoring/alerts?limit=1000", viewer).await.expect(200);
        if names(&l["alerts"], "id").contains(&account_alert.id) {
            break;
        }
        assert!(Instant::now() < deadline, "the account alert was not listed within 20 s: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // ---- Redis gone: the health answers 503 `unhealthy` in its own shape; reads are 503 in
    // the error format, never 500.
    edge.redis.kill().await;
    let h = edge.get("/api/v1/monitoring/health", viewer).await.expect(503);
    assert_eq!(h["status"], "unhealthy", "{h}");
    assert_eq!(h["redis"]["ok"], false);
    assert!(h["redis"]["error"].is_string());
    assert!(h.get("error").is_none(), "not the error format: {h}");
    assert!(h["reasons"][0].as_str().unwrap().starts_with("redis"), "{h}");
    for path in [
        "/api/v1/streams",
        "/api/v1/health/streams",
        "/api/v1/streams/md.candles/health",
        "/api/v1/streams/metrics",
        "/api/v1/streams/sys.events/dlq/stats",
        "/api/v1/streams/sys.events/dlq/messages",
        "/api/v1/monitoring/alerts",
    ] {
        edge.get(path, viewer).await.expect_error(503, "unavailable");
    }
    edge.post(replay, trader, Some(json!({"all": true}))).await.expect_error(503, "unavailable");
    edge.post(&acc_resolve, trader, None).await.expect_error(503, "unavailable");
    // Configuration needs no Redis; bad input is still a 4xx.
    edge.get("/api/v1/streams/md.candles/config", viewer).await.expect(200);
    edge.get("/api/v1/streams/no.such/health", viewer).await.expect_error(404, "not_found");
    edge.post(replay, trader, Some(json!({}))).await.expect_error(422, "invalid_body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented() {
    let edge = Edge::start().await;

    // ---- The OpenAPI document describes every route.
    let doc = edge.get("/openapi.json", None).await.expect(200);
    for p in [
        "/api/v1/streams",
        "/api/v1/streams/{name}/config",
        "/api/v1/streams/{name}/health",
        "/api/v1/health/streams",
        "/api/v1/streams/metrics",
        "/api/v1/streams/{name}/dlq/stats",
        "/api/v1/streams/{name}/dlq/messages",
        "/api/v1/streams/{name}/dlq/replay",
        "/api/v1/streams/{name}/dlq",
        "/api/v1/monitoring/health",
        "/api/v1/monitoring/alerts",
        "/api/v1/monitoring/alerts/{id}/acknowledge",
        "/api/v1/monitoring/alerts/{id}/resolve",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from /openapi.json");
    }
}
