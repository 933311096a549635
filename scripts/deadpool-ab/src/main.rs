//! Interleaved A/B (scripts/deadpool-ab/run.sh): (1) a dedicated connection opened per reader
//! (what tradeflow's bus does for each partition reader and tap: `Bus::blocking_connection`,
//! TCP_NODELAY, a response timeout of BLOCK + 5 s) against one taken from a deadpool-redis pool;
//! (2) request-path reads by 64 concurrent callers through the shared multiplexed
//! ConnectionManager (what the bus and the edge use) against a deadpool-redis pool.
use std::time::{Duration, Instant};

use deadpool_redis::{Config, Runtime};
use redis::aio::ConnectionManager;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};

fn client(url: &str) -> Client {
    let info = url.into_connection_info().unwrap();
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Client::open(info.set_tcp_settings(tcp)).unwrap()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap();
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let c = client(&url);
    let cfg = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_millis(1250) + Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    // A stream to read: 1,000 entries of ~200 bytes.
    let mut m = c.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL").arg("ab:s").query_async(&mut m).await.unwrap();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("XADD").arg("ab:s").arg("*").arg("m").arg(format!("{i:0>200}")).ignore();
    }
    let _: () = p.query_async(&mut m).await.unwrap();

    // (1) acquisition of a reader's connection + its first XREAD.
    let pool = Config::from_url(url.clone()).builder().unwrap().max_size(16).runtime(Runtime::Tokio1).build().unwrap();
    let n = 2000;
    for round in 0..rounds {
        for arm in ["open", "pool"] {
            let mut lat = Vec::with_capacity(n);
            let started = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                match arm {
                    "open" => {
                        let mut conn = c.get_multiplexed_async_connection_with_config(&cfg).await.unwrap();
                        let _: redis::Value = redis::cmd("XREAD")
                            .arg("COUNT")
                            .arg(1)
                            .arg("STREAMS")
                            .arg("ab:s")
                            .arg("0")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                    }
                    _ => {
                        let mut conn = pool.get().await.unwrap();
                        let _: redis::Value = redis::cmd("XREAD")
                            .arg("COUNT")
                            .arg(1)
                            .arg("STREAMS")
                            .arg("ab:s")
                            .arg("0")
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                    }
                }
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let total = started.elapsed().as_secs_f64();
            println!(
                "acquire round {round} {arm}: {n} × (connection + first XREAD): mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
                total * 1e6 / n as f64,
                pct(&mut lat, 0.5),
                pct(&mut lat, 0.99)
            );
        }
    }

    // (2) request path: 64 concurrent callers, XREVRANGE COUNT 20 each, for `secs`.
    let secs = 3.0;
    let manager = c.get_connection_manager().await.unwrap();
    for round in 0..rounds {
        for arm in ["manager", "pool8", "pool64"] {
            let size = match arm {
                "pool8" => 8,
                _ => 64,
            };
            let pool = Config::from_url(url.clone())
                .builder()
                .unwrap()
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let mut tasks = Vec::new();
            for _ in 0..64 {
                let manager: ConnectionManager = manager.clone();
                let pool = pool.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut manager = manager;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let mut cmd = redis::cmd("XREVRANGE");
                        cmd.arg("ab:s").arg("+").arg("-").arg("COUNT").arg(20);
                        let _: redis::Value = if arm == "manager" {
                            cmd.query_async(&mut manager).await.unwrap()
                        } else {
                            let mut conn = pool.get().await.unwrap();
                            cmd.query_async(&mut conn).await.unwrap()
                        };
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            println!(
                "request round {round} {arm}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
                all.len() as f64 / secs,
                pct(&mut all, 0.5),
                pct(&mut all, 0.99)
            );
        }
    }
}
