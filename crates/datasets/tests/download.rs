//! Downloads against the fake Binance of `tradeflow_testkit::binance` (the ingest tests' own):
//! stopped half-way and resumed they write the very file one uninterrupted run writes, gaps
//! are reported where the market has holes, and the throughput is measured.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tradeflow_core::market::Interval;
use tradeflow_datasets::{BinanceConfig, Datasets, DownloadProgress, DownloadRequest, Gap, download};
use tradeflow_testkit::binance::{Market, Shared, T0, expected_raw, serve_rest};

const MIN: i64 = 60_000;

/// A market of `n` one-minute BTCUSDT bars from T0, without the bars in `holes`.
fn market(n: i64, holes: std::ops::Range<i64>) -> Shared {
    let mut m = Market::default();
    for k in (0..n).filter(|k| !holes.contains(k)) {
        m.add("BTCUSDT", Interval::M1, k);
    }
    Arc::new(Mutex::new(m))
}

fn config(url: &str, page_limit: u16) -> BinanceConfig {
    let mut c = BinanceConfig::new([]);
    c.rest_url = url.to_string();
    c.page_limit = page_limit;
    c.request_timeout = Duration::from_secs(5);
    c.retry_backoff = Duration::from_millis(10);
    c
}

fn request(n: i64) -> DownloadRequest {
    DownloadRequest { symbol: "btcusdt".into(), interval: Interval::M1, from: T0, to: Some(T0 + n * MIN) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_stopped_half_way_and_resumed_writes_the_file_an_uninterrupted_one_writes() {
    const N: i64 = 6_000;
    let market = market(N, 3_000..3_004);
    market.lock().unwrap().delay = Some(Duration::from_millis(60));
    let url = serve_rest(market.clone()).await;
    let config = config(&url, 200);

    // One run, start to end.
    let whole = tempfile::tempdir().unwrap();
    let whole = Datasets::new(whole.path());
    let mut calls: Vec<(Instant, DownloadProgress)> = Vec::new();
    let full =
        download(&whole, &config, &request(N), |p| calls.push((Instant::now(), p.clone())), &CancellationToken::new())
            .await
            .unwrap();
    assert!(!full.cancelled);
    assert_eq!((full.rows_added, full.rows_total, full.pages, full.resumed_at), (5_996, 5_996, 30, None));
    assert_eq!(full.gaps, vec![Gap { from: T0 + 3_000 * MIN, to: T0 + 3_004 * MIN, missing: 4 }]);
    assert!(full.refused.is_empty(), "{:?}", full.refused);
    // Progress: at most four calls a second (and the last), moving forward, ending at 1.
    let (first, last) = (calls.first().unwrap().0, calls.last().unwrap().0);
    let span = last.duration_since(first).as_secs_f64();
    assert!(calls.len() as f64 <= span * 4.0 + 2.0, "{} calls in {span:.2} s", calls.len());
    assert!(calls.windows(2).all(|w| w[0].1.fraction <= w[1].1.fraction && w[0].1.rows <= w[1].1.rows));
    assert_eq!((calls.last().unwrap().1.fraction, calls.last().unwrap().1.rows), (1.0, 5_996));

    // Another, stopped after about half of its pages, then run again.
    let halves = tempfile::tempdir().unwrap();
    let halves = Datasets::new(halves.path());
    let before = market.lock().unwrap().requests.len();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let watcher = {
        let market = market.clone();
        tokio::spawn(async move {
            while market.lock().unwrap().requests.len() < before + 14 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.cancel();
        })
    };
    let first = download(&halves, &config, &request(N), |_| {}, &cancel).await.unwrap();
    watcher.await.unwrap();
    assert!(first.cancelled);
    assert!(first.rows_added > 0 && first.rows_added < 5_996, "{first:?}");
    let saved = halves.read("BTCUSDT:1m", None, None).unwrap().bars;
    assert_eq!(saved.len() as u64, first.rows_added, "what was fetched is in the file");

    let mid = market.lock().unwrap().requests.len();
    let second = download(&halves, &config, &request(N), |_| {}, &CancellationToken::new()).await.unwrap();
    assert!(!second.cancelled);
    let resumed_at = saved.last().unwrap().open_time() + MIN;
    assert_eq!(second.resumed_at, Some(resumed_at));
    assert_eq!(first.rows_added + second.rows_added, 5_996);
    assert_eq!(second.gaps, full.gaps);
    // The second run asked for nothing before where the file ended.
    let asked = market.lock().unwrap().requests[mid..].to_vec();
    let start = tradeflow_testkit::binance::param(&asked[0], "startTime").unwrap();
    assert_eq!(start, resumed_at.to_string(), "{asked:?}");

    let (a, b) =
        (whole.path(&whole.resolve("BTCUSDT:1m").unwrap()), halves.path(&halves.resolve("BTCUSDT:1m").unwrap()));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "the same bytes");
    let bars = whole.read("BTCUSDT:1m", None, None).unwrap().bars;
    for bar in &bars {
        let k = (bar.open_time() - T0) / MIN;
        let raw = expected_raw(bar.open_time(), k);
        assert_eq!(
            (bar.open(), bar.high(), bar.low(), bar.close(), bar.volume()),
            (raw.open, raw.high, raw.low, raw.close, raw.volume)
        );
    }

    // Once complete, a third run has nothing to fetch and changes nothing.
    let again = download(&halves, &config, &request(N), |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!((again.rows_added, again.rows_total), (0, 5_996));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // The listing reports the planted gap.
    let list = halves.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].rows, list[0].first_bar, list[0].last_bar), (5_996, Some(T0), Some(T0 + (N - 1) * MIN)));
    assert_eq!((list[0].gaps.clone(), list[0].missing), (full.gaps.clone(), 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_that_starts_after_the_requested_start_is_refused_only_when_binance_has_earlier_bars() {
    let market = market(100, 0..0);
    let url = serve_rest(market.clone()).await;
    let config = config(&url, 1000);
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path());
    let late = DownloadRequest { from: T0 + 50 * MIN, ..request(100) };
    assert_eq!(download(&datasets, &config, &late, |_| {}, &CancellationToken::new()).await.unwrap().rows_added, 50);
    let e = download(&datasets, &config, &request(100), |_| {}, &CancellationToken::new()).await.unwrap_err();
    assert!(
        e.to_string().contains("starts at 2023-11-14T22:50:00 (UTC), after the requested start 2023-11-14T22:00:00"),
        "{e}"
    );
    // Before the market's first bar there is nothing: going on is fine.
    let early = DownloadRequest { from: T0 - 500 * MIN, ..request(100) };
    let other = tempfile::tempdir().unwrap();
    let fresh = Datasets::new(other.path());
    let s = download(&fresh, &config, &early, |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!((s.rows_added, s.gaps.len()), (100, 0));
    let s = download(&fresh, &config, &early, |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!(s.rows_added, 0);
    // An unknown symbol is Binance's refusal, with its code.
    let bad = DownloadRequest { symbol: "NOPEUSDT".into(), ..request(100) };
    let e = download(&fresh, &config, &bad, |_| {}, &CancellationToken::new()).await.unwrap_err();
    assert!(e.to_string().contains("Invalid symbol. (Binance code -1121)"), "{e}");
    assert!(!e.is_bad_input());
}

/// Rows per second of a download against the fake server (no delay): the figure reported in
/// docs. `cargo test --release -p tradeflow-datasets --test download -- throughput --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_against_the_fake_binance() {
    const N: i64 = 200_000;
    let market = market(N, 0..0);
    let url = serve_rest(market).await;
    let config = config(&url, 1000);
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path());
    let s = download(&datasets, &config, &request(N), |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!((s.rows_added, s.pages), (N as u64, 200));
    let rate = s.rows_per_second.unwrap();
    println!(
        "download throughput: {N} rows in {} pages of 1000, {:.2} s, {rate:.0} rows/s; file {} bytes",
        s.pages,
        s.seconds,
        std::fs::metadata(&s.path).unwrap().len()
    );
    assert!(rate > 1_000.0, "{rate} rows/s");
}

#[test]
fn download_parameters_from_the_api_name_each_bad_field() {
    let ok = DownloadRequest::from_api(
        &serde_json::json!({"symbol": "ethusdt", "interval": "1h", "from": "2024-01-01", "to": 1_706_745_600_000i64}),
    )
    .unwrap();
    assert_eq!(
        ok,
        DownloadRequest {
            symbol: "ETHUSDT".into(),
            interval: Interval::H1,
            from: 1_704_067_200_000,
            to: Some(1_706_745_600_000)
        }
    );
    let e = DownloadRequest::from_api(
        &serde_json::json!({"symbol": "BTC/USDT", "interval": "7m", "from": "2024-02-30", "extra": 1}),
    )
    .unwrap_err()
    .join("\n");
    for field in [
        "symbol: \"BTC/USDT\" is not a Binance symbol",
        "interval: unknown interval \"7m\"",
        "from: \"2024-02-30\"",
        "extra: unknown field",
    ] {
        assert!(e.contains(field), "{field} missing from:\n{e}");
    }
    let e = DownloadRequest::from_api(&serde_json::json!({"symbol": "BTCUSDT", "interval": "1h", "from": 10, "to": 5}))
        .unwrap_err();
    assert_eq!(e, vec!["to: 5 is not after from 10".to_string()]);
    let e = DownloadRequest::from_api(&serde_json::json!({"symbol": "BTCUSDT"})).unwrap_err().join("\n");
    assert!(e.contains("interval: missing") && e.contains("from: missing"), "{e}");
}
