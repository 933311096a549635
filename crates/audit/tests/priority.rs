//! The SQLite threads of a file store run below normal priority, so that a transaction never
//! holds a core a pipeline stage is waiting for.
#![cfg(target_os = "linux")]

use tradeflow_audit::{AuditStore, Row, sample_signals};

/// (thread id, nice) of every thread of this process named `tf-sqlite-*`.
fn sqlite_threads() -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("tf-sqlite-") {
            continue;
        }
        let tid: u32 = task.file_name().to_string_lossy().parse().expect("numeric task id");
        // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value; the command (field 2) is in
        // parentheses, so count from the last ')'.
        let stat = std::fs::read_to_string(task.path().join("stat")).expect("task stat");
        let after = &stat[stat.rfind(')').expect("stat has a command") + 2..];
        let nice: i32 = after.split(' ').nth(16).expect("nice field").parse().expect("numeric nice");
        out.push((tid, nice));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_threads_run_at_nice_10() {
    let dir = tempfile::Builder::new().prefix("tradeflow-audit-nice-").tempdir().expect("temp dir");
    let store = AuditStore::connect(&format!("sqlite://{}", dir.path().join("a.db").display())).await.expect("connect");
    let rows: Vec<Row> = sample_signals("nice", 50);
    store.write(&rows).await.expect("write");
    let threads = sqlite_threads();
    assert!(!threads.is_empty(), "no tf-sqlite-* thread found");
    for (tid, nice) in threads {
        assert_eq!(nice, 10, "SQLite thread {tid} runs at nice {nice}");
    }
    store.close().await;
}
