//! A SQLite file store copies its write-ahead log into the database file beside the writer:
//! the file grows while the log is still far below the size at which a writer's commit would
//! checkpoint by itself.

use std::time::{Duration, Instant};

use tradeflow_audit::{AuditStore, Row, SQLITE_PAGE_SIZE, WRITER_BACKSTOP_PAGES, sample_signals};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_beside_the_writer() {
    let dir = tempfile::Builder::new().prefix("tradeflow-audit-ckpt-").tempdir().expect("temp dir");
    let db = dir.path().join("a.db");
    let store = AuditStore::connect(&format!("sqlite://{}", db.display())).await.expect("connect");
    let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let wal = || std::fs::metadata(dir.path().join("a.db-wal")).map(|m| m.len()).unwrap_or(0);
    let before = size();

    // About 2.5 MB of signal rows: some 80 pages, a hundredth of the writer's own threshold.
    let rows: Vec<Row> = sample_signals("ckpt", 2_000);
    for batch in rows.chunks(250) {
        store.write(batch).await.expect("write");
    }
    let logged = wal();
    assert!(
        logged < u64::from(WRITER_BACKSTOP_PAGES) * u64::from(SQLITE_PAGE_SIZE) / 10,
        "the log ({logged} bytes) is not far below the writer's checkpoint threshold"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 2_000_000 {
        assert!(
            Instant::now() < deadline,
            "database file still {} bytes (was {before}, log {} bytes): nothing was checkpointed in 10 s",
            size(),
            wal()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.count(tradeflow_audit::Table::Signal).await.expect("count"), 2_000);
    store.close().await;
}
