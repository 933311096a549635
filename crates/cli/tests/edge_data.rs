//! The edge's dataset routes over `tradeflow up`'s data directory: `GET /data/datasets`
//! (viewer) lists what `tradeflow data` wrote, gaps included; `DELETE
//! /data/datasets/{symbol}/{interval}` is for admins only, audited, and an unknown dataset is a
//! 404 naming those that exist.

mod edge_common;

use std::time::{Duration, Instant};

use edge_common::Edge;
use tradeflow_core::market::Interval;
use tradeflow_datasets::Datasets;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_are_listed_for_viewers_and_deleted_by_admins_with_an_audit_record() {
    let edge = Edge::start().await;
    let datasets = Datasets::in_data_dir(edge.dir.path());
    // Two hours of bars with the third missing.
    let h = 3_600_000;
    let csv = edge.dir.path().join("eth.csv");
    let rows: Vec<String> = [0, 1, 3].iter().map(|k| format!("{},10,11,9,10.5,2", 1_700_002_800_000 + k * h)).collect();
    std::fs::write(&csv, format!("timestamp,open,high,low,close,volume\n{}\n", rows.join("\n"))).unwrap();
    datasets.import_csv(&csv, "binance", "ETHUSDT", Interval::H1).unwrap();
    datasets.import_csv(&csv, "csv", "ETHUSD", Interval::H1).unwrap();

    let (v, t, a) = (Some(edge.viewer.as_str()), Some(edge.trader.as_str()), Some(edge.admin.as_str()));
    edge.get("/api/v1/data/datasets", None).await.expect_error(401, "unauthorized");
    let list = edge.get("/api/v1/data/datasets", v).await.expect(200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let eth = items.iter().find(|d| d["symbol"] == "ETHUSDT").unwrap();
    assert_eq!(eth["source"], "binance");
    assert_eq!(eth["interval"], "1h");
    assert_eq!(eth["spec"], "ETHUSDT:1h");
    assert_eq!((eth["rows"].as_u64(), eth["first_bar"].as_i64()), (Some(3), Some(1_700_002_800_000)));
    assert_eq!(
        eth["gaps"],
        serde_json::json!([{"from": 1_700_002_800_000i64 + 2 * h, "to": 1_700_002_800_000i64 + 3 * h, "missing": 1}])
    );
    assert!(eth["file_bytes"].as_u64().unwrap() > 0);
    assert!(eth.get("path").is_none(), "no server paths in the API");

    let path = "/api/v1/data/datasets/ETHUSDT/1h";
    edge.delete(path, v).await.expect_error(403, "forbidden");
    edge.delete(path, t).await.expect_error(403, "forbidden");
    let unknown = edge.delete("/api/v1/data/datasets/SOLUSDT/1h", a).await.expect_error(404, "not_found");
    assert_eq!(unknown["error"]["details"]["known"], serde_json::json!(["ETHUSDT:1h", "csv:ETHUSD:1h"]), "{unknown}");
    edge.delete("/api/v1/data/datasets/ETHUSDT/7m", a).await.expect_error(400, "invalid_request");
    let deleted = edge.delete(path, a).await.expect(200);
    assert_eq!(
        (deleted["deleted"]["spec"].as_str(), deleted["deleted"]["rows"].as_u64()),
        (Some("ETHUSDT:1h"), Some(3))
    );
    edge.delete(path, a).await.expect_error(404, "not_found");
    let other = edge.delete("/api/v1/data/datasets/ETHUSD/1h?source=csv", a).await.expect(200);
    assert_eq!(other["deleted"]["source"], "csv");
    assert_eq!(edge.get("/api/v1/data/datasets", v).await.expect(200)["items"], serde_json::json!([]));

    // Recorded in the audit log: the deletions, and the refused attempt.
    let store = edge.store().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<tradeflow_audit::AuditLogRow> = store
            .rows(tradeflow_audit::Table::Audit, 10_000, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| if let tradeflow_audit::Row::Audit(a) = r { Some(a) } else { None })
            .filter(|a| a.action == "data.delete")
            .collect();
        let ok = rows.iter().filter(|r| r.status == "ok").count();
        let refused = rows.iter().filter(|r| r.status == "refused").count();
        if ok == 2 && refused >= 2 {
            let first = rows.iter().find(|r| r.status == "ok" && r.resource == "/data/datasets/ETHUSDT/1h").unwrap();
            assert_eq!(first.actor, "admin");
            assert!(first.details.contains("\"rows\":3"), "{}", first.details);
            break;
        }
        assert!(Instant::now() < deadline, "data.delete rows not stored within 20 s: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let doc = edge.get("/openapi.json", None).await.expect(200);
    assert!(doc["paths"]["/api/v1/data/datasets"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/data/datasets/{symbol}/{interval}"]["delete"].is_object());
}
