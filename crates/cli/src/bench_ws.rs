//! `tradeflow bench ws`: WebSocket fan-out of a running edge. N clients connect to `/ws`
//! (alerts are subscribed by default), this process publishes alerts on `sys.events` at a
//! steady rate, the edge taps them and fans them out; each client measures publish → receive
//! from the event's own time stamp (epoch ms, one clock: same machine).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
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
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Clients the edge dropped for being slow.
    pub dropped: usize,
}

const MARKER: &str = "bench-ws";

/// Latencies (ms) of the bench events one client received, and whether it was dropped.
async fn client(url: String, stop: tokio_util::sync::CancellationToken) -> anyhow::Result<(Vec<u32>, bool)> {
    // A small read buffer: tungstenite zeroes the whole buffer on reads (128 KiB by default),
    // which would make this process, not the edge, what is measured.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), false)
        .await
        .with_context(|| format!("connect {url}"))?;
    let mut lat = Vec::new();
    // Created once: a fresh `cancelled()` per message showed up in profiles of this process.
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    loop {
        let msg = tokio::select! { _ = &mut cancelled => break, m = ws.next() => m };
        let Some(Ok(msg)) = msg else { break };
        match msg {
            Message::Text(t) => {
                let b = t.as_bytes();
                if memchr::memmem::find(b, MARKER.as_bytes()).is_none() {
                    continue;
                }
                // The alert's own `time` (set at publish), read without parsing the frame:
                // this process must not be the bottleneck of what it measures.
                if let Some(i) = memchr::memmem::find(b, b"\"time\":") {
                    let sent = b[i + 7..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
                    lat.push((now_ms() - sent).max(0) as u32);
                }
            }
            Message::Close(c) => return Ok((lat, c.is_some_and(|c| u16::from(c.code) == 1013))),
            _ => {}
        }
    }
    Ok((lat, false))
}

pub async fn run(
    settings: &Settings,
    url: &str,
    token: Option<&str>,
    clients: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<WsReport> {
    let bus = crate::connect(settings).await?;
    let producer = Producer::new(bus, "bench");
    let ws_url = match token {
        Some(t) => format!("{}/ws?token={t}", url.trim_end_matches('/')),
        None => format!("{}/ws", url.trim_end_matches('/')),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        tasks.push(tokio::spawn(client(ws_url.clone(), stop.clone())));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Publish in 10 ms slices at the steady rate.
    let total = rate * seconds;
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut all = Vec::new();
    let (mut connected, mut dropped) = (0, 0);
    for t in tasks {
        if let Ok(Ok((lat, was_dropped))) = t.await {
            connected += 1;
            dropped += was_dropped as usize;
            all.extend(lat);
        }
    }
    all.sort_unstable();
    let q = |p: f64| all.get(((all.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0) as f64;
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
        max_ms: all.last().copied().unwrap_or(0) as f64,
        dropped,
    })
}
