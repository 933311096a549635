//! The audit store on SQLite (a temp file) and on a private PostgreSQL (TestPostgres): every
//! scenario runs the same body on both.

use std::collections::BTreeMap;

use tradeflow_audit::{
    AuditError, AuditLogRow, AuditStore, BalanceRow, CandleRow, DecisionRow, FillRow, OrderRow, PositionRow,
    RejectionRow, Row, SignalRow, SystemEventRow, Table, TradingLogRow, WriteReport, sample_fills, sample_signals,
};
use tradeflow_testkit::postgres::TestPostgres;

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("audit.db").display())
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tradeflow-audit-").tempdir().expect("temp dir")
}

async fn connect(url: &str) -> AuditStore {
    match AuditStore::connect(url).await {
        Ok(s) => s,
        Err(e) => panic!("connect {url}: {e}"),
    }
}

async fn write(store: &AuditStore, rows: &[Row]) -> WriteReport {
    match store.write(rows).await {
        Ok(r) => r,
        Err(e) => panic!("write {} rows: {e}", rows.len()),
    }
}

async fn counts(store: &AuditStore) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for &t in Table::ALL {
        out.insert(t.name(), store.count(t).await.expect("count"));
    }
    out
}

/// Every row of every table, by table, in id order.
async fn everything(store: &AuditStore) -> BTreeMap<&'static str, Vec<Row>> {
    let mut out = BTreeMap::new();
    for &t in Table::ALL {
        out.insert(t.name(), store.rows(t, i64::MAX, 0).await.expect("rows"));
    }
    out
}

/// `rows` as `everything` returns them.
fn by_table(rows: &[Row]) -> BTreeMap<&'static str, Vec<Row>> {
    let mut out: BTreeMap<&'static str, Vec<Row>> = Table::ALL.iter().map(|t| (t.name(), Vec::new())).collect();
    for r in rows {
        out.entry(r.table().name()).or_default().push(r.clone());
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.id().cmp(b.id()));
    }
    out
}

/// Floats that do not survive a decimal round trip, extreme integers, awkward text.
const AWKWARD: [f64; 6] = [0.1 + 0.2, 1e-300, 123_456_789.123_456_79, f64::MAX, f64::MIN_POSITIVE, 5e-324];

/// Two rows of every table, tagged `tag`: the first with every option `Some`, the second with
/// every option `None`.
fn every_table(tag: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for k in 0..2usize {
        let some = k == 0;
        let f = |i: usize| AWKWARD[(i + k) % AWKWARD.len()] * if k == 0 { 1.0 } else { -1.0 };
        let opt = |i: usize| some.then(|| f(i));
        let id = |t: &str| format!("{tag}/{t}/{k}");
        let text = |s: &str| format!("{s} 'quoted' \"double\" ; DROP TABLE candles; -- ünïcødé 📈 {k}");
        rows.push(Row::Candle(CandleRow {
            id: id("candle"),
            source: "binance".into(),
            symbol: "BTCUSDT".into(),
            interval: "1m".into(),
            open_time: i64::MAX - k as i64,
            open: f(0),
            high: f(1),
            low: f(2),
            close: f(3),
            volume: f(4),
        }));
        rows.push(Row::Signal(SignalRow {
            id: id("signal"),
            candle_id: id("candle"),
            symbol: "BTCUSDT".into(),
            interval: "1m".into(),
            open_time: i64::MIN + k as i64,
            model: "xgb_v3".into(),
            model_kind: "ml".into(),
            action: "long".into(),
            confidence: f(1),
            status: if some { "error" } else { "ok" }.into(),
            error: some.then(|| text("timed out")),
            reasoning: text("reasoning"),
            scores: r#"{"long":0.7,"short":0.2}"#.into(),
            features: r#"{"rsi_14":31.5}"#.into(),
            market: r#"{"trend":"sideways"}"#.into(),
            stop_loss: opt(2),
            take_profit: opt(3),
            latency_us: 1234 + k as i64,
        }));
        rows.push(Row::Decision(DecisionRow {
            id: id("decision"),
            candle_id: id("candle"),
            symbol: "ETHUSDT".into(),
            interval: "5m".into(),
            open_time: 1_700_000_000_000,
            profile: "balanced".into(),
            action: "short".into(),
            confidence: f(5),
            trigger: "quorum".into(),
            missing: r#"["analyst"]"#.into(),
            contributions: r#"[{"model":"ema_cross","weight":0.5}]"#.into(),
            reasoning: text("decided"),
            stop_loss: opt(0),
            take_profit: opt(1),
        }));
        rows.push(Row::Order(OrderRow {
            id: id("order"),
            decision_id: id("decision"),
            account: "paper".into(),
            symbol: "ETHUSDT".into(),
            side: "sell".into(),
            order_type: if some { "limit" } else { "market" }.into(),
            intent: "open".into(),
            quantity: f(2),
            limit_price: opt(3),
            reference_price: f(4),
            leverage: 3.0,
            stop_loss: opt(5),
            take_profit: opt(0),
            trailing_stop_pct: opt(1),
            seq: 7 + k as i64,
            time: 1_700_000_000_123,
        }));
        rows.push(Row::Rejection(RejectionRow {
            id: id("rejection"),
            decision_id: id("decision"),
            account: "paper".into(),
            symbol: "SOLUSDT".into(),
            action: "long".into(),
            reason: "max_positions".into(),
            message: text("too many open positions"),
            seq: 8,
            time: 1_700_000_000_456,
        }));
        rows.push(Row::Fill(FillRow {
            id: id("fill"),
            order_id: id("order"),
            account: "paper".into(),
            symbol: "ETHUSDT".into(),
            side: "sell".into(),
            quantity: f(3),
            price: f(4),
            fee: f(5),
            realized_pnl: f(0),
            liquidity: "taker".into(),
            reason: "entry".into(),
            seq: 9,
            time: 1_700_000_000_789 - k as i64,
        }));
        rows.push(Row::Position(PositionRow {
            id: id("position"),
            account: "paper".into(),
            symbol: "ETHUSDT".into(),
            side: "short".into(),
            quantity: f(1),
            entry_price: f(2),
            mark_price: f(3),
            unrealized_pnl: f(4),
            liquidation_price: opt(5),
            stop_loss: opt(0),
            take_profit: opt(1),
            status: "open".into(),
            seq: 10,
            time: 1_700_000_001_000,
        }));
        rows.push(Row::Balance(BalanceRow {
            id: id("balance"),
            account: "paper".into(),
            balance: f(0),
            equity: f(1),
            margin_used: f(2),
            unrealized_pnl: f(3),
            realized_pnl: f(4),
            fees: f(5),
            open_positions: 1,
            seq: 11,
            time: 1_700_000_001_000,
        }));
        rows.push(Row::TradingLog(TradingLogRow {
            id: id("log"),
            account: "paper".into(),
            symbol: some.then(|| "ETHUSDT".into()),
            action: if some { "open_short" } else { "auto_pause" }.into(),
            details: text("details"),
            time: 1_700_000_001_001,
        }));
        rows.push(Row::SystemEvent(SystemEventRow {
            id: id("event"),
            kind: "service_started".into(),
            service: "exec".into(),
            severity: "info".into(),
            message: text("started"),
            details: r#"{"version":"0.1.0"}"#.into(),
            time: 1_700_000_001_002,
        }));
        rows.push(Row::Audit(AuditLogRow {
            id: id("audit"),
            actor: "admin".into(),
            action: "pause_trading".into(),
            resource: "account/paper".into(),
            ip: some.then(|| "127.0.0.1".into()),
            status: "ok".into(),
            details: text("paused by hand"),
            time: 1_700_000_001_003,
        }));
        // A story is kept once by its link and by its normalised title: both differ per row.
        let title = text(&format!("{tag} headline"));
        rows.push(Row::News(tradeflow_audit::NewsRow {
            id: id("news"),
            source: "rss".into(),
            title_key: tradeflow_core::news::normalised_title(&title),
            title,
            link: if some { format!("https://example.com/{tag}/{k}") } else { String::new() },
            summary: text("summary"),
            symbols: if some { "BTCUSDT,ETHUSDT" } else { "" }.into(),
            published_at: 1_700_000_001_004,
            fetched_at: 1_700_000_001_005,
        }));
        rows.push(Row::Job(tradeflow_audit::JobRow {
            id: id("task"),
            kind: "backtest".into(),
            state: "queued".into(),
            attempt: 0,
            submitted_by: "ops".into(),
            role: "trader".into(),
            submitted_at: 1_700_000_001_006,
            params: text("{}"),
        }));
        rows.push(Row::JobEventRecord(tradeflow_audit::JobEventRow {
            id: id("job_event"),
            task_id: id("task"),
            kind: "hyperopt".into(),
            attempt: 1,
            state: "failed".into(),
            error: some.then(|| "timeout".into()),
            worker: "jobs-a".into(),
            time: 1_700_000_001_007,
        }));
    }
    rows
}

async fn roundtrip(url: &str) {
    let store = connect(url).await;
    assert_eq!(counts(&store).await.values().sum::<i64>(), 0, "a fresh store is empty");

    let batch = every_table("a");
    assert_eq!(batch.len(), 2 * Table::ALL.len());
    let tables: std::collections::BTreeSet<_> = batch.iter().map(Row::table).collect();
    assert_eq!(tables.len(), Table::ALL.len(), "the batch has rows of every table");

    assert_eq!(write(&store, &batch).await, WriteReport { inserted: batch.len() as u64, duplicates: 0 });
    let after_first = counts(&store).await;
    for &t in Table::ALL {
        assert_eq!(after_first[t.name()], 2, "{t}");
    }
    // Read back equal: floats bit-exact, options None/Some as written.
    assert_eq!(everything(&store).await, by_table(&batch));

    // Idempotent: the same batch again stores nothing.
    assert_eq!(write(&store, &batch).await, WriteReport { inserted: 0, duplicates: batch.len() as u64 });
    assert_eq!(counts(&store).await, after_first);

    // New and old mixed: only the new; an old id with other content does not overwrite.
    let mut changed = batch[0].clone();
    if let Row::Candle(c) = &mut changed {
        c.close = 42.0;
    }
    let new = every_table("b");
    let mut mixed = vec![changed];
    mixed.extend(new.iter().cloned());
    mixed.extend(batch[5..9].iter().cloned());
    assert_eq!(write(&store, &mixed).await, WriteReport { inserted: new.len() as u64, duplicates: 5 });
    let mut all = batch.clone();
    all.extend(new);
    assert_eq!(everything(&store).await, by_table(&all));

    // An id repeated within one batch: the first given is stored.
    let mut twice = every_table("c")[..1].to_vec();
    let mut second = twice[0].clone();
    if let Row::Candle(c) = &mut second {
        c.volume = 1.0;
    }
    twice.push(second);
    assert_eq!(write(&store, &twice).await, WriteReport { inserted: 1, duplicates: 1 });
    let stored = store.rows(Table::Candle, 1, 0).await.expect("rows");
    let candles = store.rows(Table::Candle, 100, 0).await.expect("rows");
    assert!(candles.contains(&twice[0]) && !candles.contains(&twice[1]));
    assert_eq!(stored.len(), 1, "limit");
    assert_eq!(store.rows(Table::Candle, 100, 4).await.expect("rows"), candles[4..].to_vec(), "offset");

    // ids sorted by bytes, on both backends.
    let odd: Vec<Row> = ["B", "a", "_", "Z", "~", "é"]
        .iter()
        .map(|s| {
            Row::SystemEvent(SystemEventRow {
                id: (*s).into(),
                kind: "k".into(),
                service: "s".into(),
                severity: "info".into(),
                message: String::new(),
                details: "{}".into(),
                time: 0,
            })
        })
        .collect();
    write(&store, &odd).await;
    let ids = store.ids(Table::SystemEvent).await.expect("ids");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 10);

    // fills(account) in (time, id) order; other accounts left out.
    let mut fills = sample_fills("f/", "acct-1", 50);
    fills.extend(sample_fills("g/", "acct-2", 5));
    fills.reverse();
    write(&store, &fills).await;
    let got = store.fills("acct-1").await.expect("fills");
    assert_eq!(got.len(), 50);
    assert!(got.windows(2).all(|w| (w[0].time, &w[0].id) < (w[1].time, &w[1].id)));
    let mut want: Vec<FillRow> =
        fills.iter().filter_map(|r| if let Row::Fill(f) = r { Some(f.clone()) } else { None }).collect();
    want.retain(|f| f.account == "acct-1");
    want.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    assert_eq!(got, want);
    assert_eq!(store.fills("nobody").await.expect("fills"), vec![]);

    // Concurrent writers of overlapping batches (in opposite orders) store each row once.
    let rows = sample_signals("conc/", 400);
    let mut reversed = rows.clone();
    reversed.reverse();
    let before = store.count(Table::Signal).await.expect("count");
    let (a, b, c) = tokio::join!(store.write(&rows[..300]), store.write(&reversed[..300]), store.write(&rows));
    let inserted = [a, b, c].into_iter().map(|r| r.expect("concurrent write").inserted).sum::<u64>();
    assert_eq!(inserted, 400);
    assert_eq!(store.count(Table::Signal).await.expect("count"), before + 400);
    store.close().await;
}

async fn refuses_non_finite(url: &str) {
    let store = connect(url).await;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut batch = every_table("nf");
        let Some(Row::Order(order)) = batch.iter_mut().find(|r| matches!(r, Row::Order(_))) else {
            panic!("no order in the batch");
        };
        order.reference_price = bad;
        let id = order.id.clone();
        match store.write(&batch).await {
            Err(e @ AuditError::NonFinite { .. }) => {
                let msg = e.to_string();
                for part in ["orders", id.as_str(), "reference_price"] {
                    assert!(msg.contains(part), "{msg:?} names {part}");
                }
            }
            other => panic!("{bad} in orders.reference_price: {other:?}"),
        }
        assert_eq!(counts(&store).await.values().sum::<i64>(), 0, "nothing of the batch is stored");
    }

    // In a nullable column a non-finite float is stored as NULL.
    let mut batch = every_table("nullable");
    for r in &mut batch {
        if let Row::Order(o) = r {
            o.limit_price = Some(f64::NAN);
            o.trailing_stop_pct = Some(f64::INFINITY);
        }
    }
    assert_eq!(write(&store, &batch).await.inserted, batch.len() as u64);
    let orders = store.rows(Table::Order, 10, 0).await.expect("rows");
    assert_eq!(orders.len(), 2);
    for o in orders {
        let Row::Order(o) = o else { panic!("not an order") };
        assert_eq!((o.limit_price, o.trailing_stop_pct), (None, None));
    }
    store.close().await;
}

/// A failure in the middle of the transaction (a table vanished) leaves nothing of the batch.
async fn rolls_back_on_failure(url: &str) {
    let store = connect(url).await;
    write(&store, &every_table("before")).await;
    let before = counts(&store).await;
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(url).await.expect("side connection");
        sqlx::query("DROP TABLE audit_log").execute(&mut conn).await.expect("drop audit_log");
        conn.close().await.expect("close");
    }
    // audit_log is the last table written, after ten tables went in fine.
    match store.write(&every_table("after")).await {
        Err(e @ AuditError::Insert { table: "audit_log", .. }) => {
            assert!(e.to_string().contains("insert into audit_log"), "{e}")
        }
        other => panic!("write into a dropped table: {other:?}"),
    }
    let mut after = counts_without_audit_log(&store).await;
    after.insert("audit_log", before["audit_log"]);
    assert_eq!(after, before, "nothing of the failed batch is stored");
    store.close().await;
}

async fn counts_without_audit_log(store: &AuditStore) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for &t in Table::ALL.iter().filter(|t| **t != Table::Audit) {
        out.insert(t.name(), store.count(t).await.expect("count"));
    }
    out
}

/// 100,000 rows in one batch: several full chunks per table plus a ragged tail.
async fn large_batch(url: &str) {
    let store = connect(url).await;
    let mut rows = sample_signals("big/", 70_001);
    rows.extend(sample_fills("big/", "acct", 29_999));
    assert_eq!(rows.len(), 100_000);
    assert_eq!(write(&store, &rows).await, WriteReport { inserted: 100_000, duplicates: 0 });
    assert_eq!(store.count(Table::Signal).await.expect("count"), 70_001);
    assert_eq!(store.count(Table::Fill).await.expect("count"), 29_999);
    let stored = store.rows(Table::Signal, i64::MAX, 0).await.expect("rows");
    assert_eq!(stored, by_table(&rows)["signals"]);
    assert_eq!(store.fills("acct").await.expect("fills").len(), 29_999);

    // Again, with 1,000 new rows spread through it.
    rows.extend(sample_signals("big2/", 1_000));
    rows.rotate_left(50_000);
    assert_eq!(write(&store, &rows).await, WriteReport { inserted: 1_000, duplicates: 100_000 });
    assert_eq!(store.count(Table::Signal).await.expect("count"), 71_001);
    store.close().await;
}

/// Many writers at once (the audit worker's partitions, queued for SQLite's one write lock):
/// each batch gets its own exact report, and a batch that fails (into a dropped table) fails
/// alone while the batches written beside it are stored.
async fn concurrent_writers(url: &str) {
    let store = std::sync::Arc::new(connect(url).await);
    // 24 batches of 500 signals; batch k overlaps batch k - 1 by 250 ids.
    let signals = sample_signals("conc/", 250 * 25);
    let batch = |k: usize| signals[k * 250..k * 250 + 500].to_vec();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..24 {
        let (store, rows) = (store.clone(), batch(k));
        tasks.spawn(async move { (rows.len() as u64, write(&store, &rows).await) });
    }
    let mut inserted = 0;
    while let Some(done) = tasks.join_next().await {
        let (given, report) = done.expect("writer task");
        assert_eq!(report.inserted + report.duplicates, given, "{report:?}");
        inserted += report.inserted;
    }
    assert_eq!(inserted, 250 * 25, "each distinct row is counted as inserted exactly once");
    assert_eq!(store.count(Table::Signal).await.expect("count"), 250 * 25);

    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(url).await.expect("side connection");
        sqlx::query("DROP TABLE audit_log").execute(&mut conn).await.expect("drop audit_log");
        conn.close().await.expect("close");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..16 {
        let store = store.clone();
        let rows = if k == 7 { every_table("doomed") } else { sample_signals(&format!("more{k}/"), 100) };
        tasks.spawn(async move { (k, store.write(&rows).await) });
    }
    while let Some(done) = tasks.join_next().await {
        match done.expect("writer task") {
            (7, Err(AuditError::Insert { table: "audit_log", .. })) => {}
            (7, other) => panic!("a batch into a dropped table: {other:?}"),
            (k, Ok(report)) => assert_eq!(report, WriteReport { inserted: 100, duplicates: 0 }, "batch {k}"),
            (k, Err(e)) => panic!("batch {k} failed with the doomed one: {e}"),
        }
    }
    assert_eq!(store.count(Table::Signal).await.expect("count"), 250 * 25 + 15 * 100);
    assert_eq!(store.count(Table::Candle).await.expect("count"), 0, "nothing of the doomed batch is stored");
}

/// Connect errors name the url, never the password.
async fn connect_errors(url_of_db: impl Fn(&str) -> String) {
    for (url, shown) in [
        ("postgres://alice:s3cret@127.0.0.1:1/db".to_string(), "postgres://alice:***@127.0.0.1:1/db".to_string()),
        ("mysql://alice:s3cret@127.0.0.1/db".to_string(), "mysql://alice:***@127.0.0.1/db".to_string()),
        (url_of_db("no_such_db"), url_of_db("no_such_db").replace(":s3cret@", ":***@")),
    ] {
        match AuditStore::connect(&url).await {
            Ok(_) => panic!("{url} connected"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&shown), "{msg:?} names {shown}");
                assert!(!msg.contains("s3cret"), "{msg:?} shows the password");
            }
        }
    }
}

#[tokio::test]
async fn sqlite_roundtrip() {
    let dir = temp_dir();
    roundtrip(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_roundtrip() {
    let pg = TestPostgres::start();
    roundtrip(&pg.url()).await;
}

#[tokio::test]
async fn sqlite_refuses_non_finite() {
    let dir = temp_dir();
    refuses_non_finite(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_refuses_non_finite() {
    let pg = TestPostgres::start();
    refuses_non_finite(&pg.url()).await;
}

#[tokio::test]
async fn sqlite_rolls_back_on_failure() {
    sqlx::any::install_default_drivers();
    let dir = temp_dir();
    rolls_back_on_failure(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_rolls_back_on_failure() {
    sqlx::any::install_default_drivers();
    let pg = TestPostgres::start();
    rolls_back_on_failure(&pg.url()).await;
}

#[tokio::test]
async fn sqlite_large_batch() {
    let dir = temp_dir();
    large_batch(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn postgres_large_batch() {
    let pg = TestPostgres::start();
    large_batch(&pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers() {
    sqlx::any::install_default_drivers();
    let dir = temp_dir();
    concurrent_writers(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_writers() {
    sqlx::any::install_default_drivers();
    let pg = TestPostgres::start();
    concurrent_writers(&pg.url()).await;
}

#[tokio::test]
async fn connect_errors_hide_the_password() {
    let pg = TestPostgres::start();
    let port = pg.port();
    connect_errors(|db| format!("postgres://postgres:s3cret@127.0.0.1:{port}/{db}")).await;
    // A SQLite file that cannot be created.
    match AuditStore::connect("sqlite:///proc/no/such/dir/audit.db").await {
        Err(e) => assert!(e.to_string().contains("sqlite:///proc/no/such/dir/audit.db"), "{e}"),
        Ok(_) => panic!("a database under /proc"),
    }
}

#[tokio::test]
async fn sqlite_file_is_created_and_reopened() {
    let dir = temp_dir();
    let path = dir.path().join("nested").join("deeper").join("audit.db");
    assert!(!path.exists());
    let url = format!("sqlite://{}", path.display());
    let store = connect(&url).await;
    assert!(path.is_file(), "connect creates {}", path.display());
    let batch = every_table("reopen");
    write(&store, &batch).await;
    store.close().await;

    // Migrations already applied: connecting again works and sees the data.
    let store = connect(&url).await;
    assert_eq!(everything(&store).await, by_table(&batch));
    assert_eq!(write(&store, &batch).await.duplicates, batch.len() as u64);
    store.close().await;

    // `sqlite:relative-or-absolute-path` without `//` too.
    let plain = dir.path().join("plain.db");
    let store = connect(&format!("sqlite:{}", plain.display())).await;
    assert!(plain.is_file());
    store.close().await;
}

/// The page size a SQLite file's header records (bytes 16–17, big-endian; 1 means 65,536).
fn page_size_of(path: &std::path::Path) -> u32 {
    let header = std::fs::read(path).expect("read the database file");
    match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u32::from(n),
    }
}

#[tokio::test]
async fn sqlite_new_files_get_large_pages_and_old_files_keep_theirs() {
    let dir = temp_dir();
    let new = dir.path().join("new.db");
    let store = connect(&format!("sqlite://{}", new.display())).await;
    write(&store, &every_table("pages")).await;
    store.close().await;
    assert_eq!(page_size_of(&new), tradeflow_audit::SQLITE_PAGE_SIZE);

    // A file made earlier with SQLite's default 4 KiB pages (and already in WAL mode) opens,
    // migrates and takes writes as before; its page size stays.
    let old = dir.path().join("old.db");
    {
        use sqlx::ConnectOptions;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&old)
            .create_if_missing(true)
            .page_size(4096)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = options.connect().await.expect("create a 4 KiB-page file");
        sqlx::query("CREATE TABLE earlier (x INTEGER)").execute(&mut conn).await.expect("create a table");
        sqlx::Connection::close(conn).await.expect("close");
    }
    assert_eq!(page_size_of(&old), 4096);
    let store = connect(&format!("sqlite://{}", old.display())).await;
    let batch = every_table("old");
    write(&store, &batch).await;
    assert_eq!(everything(&store).await, by_table(&batch));
    store.close().await;
    assert_eq!(page_size_of(&old), 4096);
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = connect("sqlite::memory:").await;
    let batch = every_table("mem");
    write(&store, &batch).await;
    // On whichever pooled connection, the data is there: reads at once would each take a
    // connection of their own if the pool allowed several, and a second connection to
    // `:memory:` is another, empty database. (The pool keeps its one connection for the
    // store's life, no idle timeout: not something a short test can wait out.)
    let (a, b, c) = tokio::join!(everything(&store), everything(&store), everything(&store));
    for got in [a, b, c] {
        assert_eq!(got, by_table(&batch));
    }
    assert_eq!(write(&store, &batch).await.inserted, 0);
}

/// `cargo test -p tradeflow-audit --release -- --ignored --nocapture bench`
#[tokio::test]
#[ignore]
async fn bench_write_rates() {
    let dir = temp_dir();
    let pg = TestPostgres::start();
    let sqlite = sqlite_url(&dir);
    for (name, url) in [("sqlite file", sqlite.as_str()), ("postgres (private, fsync=off)", &pg.url())] {
        for batch in [1_000, 5_000] {
            let rate = match tradeflow_audit::bench_write(url, 200_000, batch).await {
                Ok(r) => r,
                Err(e) => panic!("bench {name}: {e}"),
            };
            println!("{name}: 200000 signal rows in batches of {batch}: {rate:.0} rows/s");
        }
    }
}

/// A SQLite file store writes through its writer thread, shared rows and borrowed rows alike,
/// with the same reports; once closed, a write is refused at once with a reason, never left
/// waiting.
#[tokio::test]
async fn sqlite_shared_writes_then_close() {
    let dir = temp_dir();
    let store = connect(&sqlite_url(&dir)).await;
    let rows = std::sync::Arc::new(sample_signals("shared/", 300));
    let twice = [rows.clone(), rows.clone()];
    let report = store.write_shared(&twice).await.expect("shared write");
    assert_eq!(report, WriteReport { inserted: 300, duplicates: 300 });
    assert_eq!(write(&store, &rows).await, WriteReport { inserted: 0, duplicates: 300 });
    assert_eq!(store.count(Table::Signal).await.expect("count"), 300);
    store.close().await;
    match tokio::time::timeout(std::time::Duration::from_secs(5), store.write_shared(&twice)).await {
        Ok(Err(e @ AuditError::Transaction { .. })) => assert!(e.to_string().contains("closed"), "{e}"),
        other => panic!("write after close: {other:?}"),
    }
}
