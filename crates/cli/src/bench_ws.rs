//! `tradeflow bench ws`: WebSocket fan-out of a running edge. N clients connect to `/ws`
//! (alerts are subscribed by default), this process publishes alerts on `sys.events` at a
//! steady rate, the edge taps them and fans them out; each client measures publish → receive
//! from the event's own time stamp (epoch ms, one clock: same machine).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use tradeflow_bus::Producer;
use tradeflow_core::MessageId;
use tradeflow_core::order::AccountAlert;
use tradeflow_core::time::now_ms;

use crate::config::Settings;

#[derive(Debug, Serialize)]
pub struct WsReport {
    pub clients: usize,
    pub connected: usize,
    pub rate_per_s: u64,
    pub seconds: u64,
    pub published: u64,
    /// Deliveries expected (connected clients × published) and made.
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_s: f64,
    /// Publish → receive; null when nothing was delivered (nothing measured).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Clients the edge dropped for being slow.
    pub dropped: usize,
}

const MARKER: &str = "bench-ws";

/// Latencies (ms) of the bench events one client received, and whether it was dropped.
async fn client(
    url: String,
    expected: usize,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(Vec<u32>, bool)> {
    let (mut ws, _) = tokio_websockets::ClientBuilder::new()
        .uri(&url)
        .with_context(|| format!("parse {url}"))?
        .connect()
        .await
        .with_context(|| format!("connect {url}"))?;
    // Sized up front: grown by doubling, the 1,000 clients' vectors were all reallocated in the
    // same instant (they receive the same events), a stall of this process that the benchmark
    // then reported as a 200 ms fan-out tail.
    let mut lat = Vec::with_capacity(expected);
    // Built once: building a finder per frame was the top entry of this process's profile.
    let marker = memchr::memmem::Finder::new(MARKER);
    let time_key = memchr::memmem::Finder::new("\"time\":");
    // Created once: a fresh `cancelled()` per message showed up in profiles of this process.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Biased to the socket: the stop future is polled only when no frame is ready, i.e.
        // once per burst, not once per frame.
        let msg = tokio::select! { biased; m = ws.next() => m, _ = &mut cancelled => break };
        let Some(Ok(msg)) = msg else { break };
        if let Some((code, _)) = msg.as_close() {
            return Ok((lat, u16::from(code) == 1013));
        }
        let Some(text) = msg.as_text() else { continue };
        let b = text.as_bytes();
        if marker.find(b).is_none() {
            continue;
        }
        // The alert's own `time` (set at publish), read without parsing the frame: this
        // process must not be the bottleneck of what it measures.
        if let Some(i) = time_key.find(b) {
            let sent =
                b[i + 7..].iter().take_while(|c| c.is_ascii_digit()).fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
            lat.push((now_ms() - sent).max(0) as u32);
        }
    }
    Ok((lat, false))
}

/// Publishes `total` bench alerts on `sys.events` at `rate` per second, in 10 ms slices, each
/// stamped with the time it is sent; returns how many were published.
async fn publish(settings: &Settings, rate: u64, total: u64) -> anyhow::Result<u64> {
    let bus = crate::connect(settings).await?;
    let producer = Producer::new(bus, "bench");
    let started = Instant::now();
    let mut published = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while published < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        let mut batch = Vec::new();
        while published < due {
            let now = now_ms();
            let alert = AccountAlert {
                id: format!("{MARKER}/{published}"),
                account: MARKER.into(),
                kind: MARKER.into(),
                message: "fan-out benchmark".into(),
                time: now,
            };
            let id = MessageId::from_parts(&[&alert.id]);
            batch.push(producer.prepare("sys.events", &id, MARKER, None, &alert)?);
            published += 1;
        }
        if !batch.is_empty() {
            producer.send(&batch).await?;
        }
    }
    Ok(published)
}

pub async fn run(
    settings: &Settings,
    url: &str,
    token: Option<&str>,
    clients: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<WsReport> {
    let ws_url = match token {
        Some(t) => format!("{}/ws?token={t}", url.trim_end_matches('/')),
        None => format!("{}/ws", url.trim_end_matches('/')),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        tasks.push(tokio::spawn(client(ws_url.clone(), (rate * seconds) as usize, stop.clone())));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The publisher runs on its own thread and runtime, so that its XADDs (written by the Redis
    // connection's driver task) leave when they are stamped, not after whatever the 1,000
    // client tasks of this process's runtime have queued: that wait would count as fan-out.
    let total = rate * seconds;
    let publisher = {
        let settings = settings.clone();
        std::thread::Builder::new().name("bench-ws-publisher".into()).spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("the publisher's runtime")?
                .block_on(publish(&settings, rate, total))
        })?
    };
    let published = tokio::task::spawn_blocking(move || publisher.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the publisher thread panicked"))??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut all = Vec::new();
    let (mut connected, mut dropped) = (0, 0);
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok((lat, was_dropped))) => {
                connected += 1;
                dropped += was_dropped as usize;
                all.extend(lat);
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::Error::new(e).context("a client task failed"))),
        }
    }
    // No client at all measures nothing: say why rather than report zeros.
    if connected == 0
        && let Some(e) = failure
    {
        return Err(e.context(format!("none of the {clients} clients connected")));
    }
    all.sort_unstable();
    let q = |p: f64| (!all.is_empty()).then(|| all[((all.len() as f64 - 1.0) * p).round() as usize] as f64);
    Ok(WsReport {
        clients,
        connected,
        rate_per_s: rate,
        seconds,
        published,
        expected: connected as u64 * published,
        delivered: all.len() as u64,
        deliveries_per_s: all.len() as f64 / seconds as f64,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: all.last().map(|&m| m as f64),
        dropped,
    })
}
