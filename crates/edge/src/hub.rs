//! WebSocket fan-out.
//!
//! An event is serialised once. A batch of events (what one read of the tap brought) is handed
//! to every client that wants any of it as one shared, reference-counted slice: one queue push
//! per client per batch, not one per event. Each client's queue is bounded in events: a client
//! with more than `client_queue` events handed over and not yet written has fallen behind, and
//! is dropped with a close frame saying why; nobody else waits for it. Each client's task writes
//! everything queued in one flush, so a burst costs one socket write, not one per event.
//!
//! Protocol (JSON text frames):
//! - server → client: `welcome {client_id, channels, subscriptions}`, `subscribed`/`unsubscribed
//!   {channels, symbols}`, events `{type, channel, symbol, id, time, data}` (types: signal,
//!   decision, order_requested, order, order_rejected, trade_executed, position_update, balance_update,
//!   price_update, system_alert, control_command, status_update; an analysis cycle's
//!   cycle_start, llm_decision (its decisions), cycle_complete; news stories, `news`; jobs, channel `tasks`:
//!   task_queued, task_started, task_progress, task_completed, task_failed, task_cancelled), `heartbeat {time}` every
//!   `heartbeat_s` (with a WebSocket ping), `pong`, `error {error: {code, message}}`.
//! - client → server: `{"type": "subscribe" | "unsubscribe", "channels": [...], "symbols": [...]}`
//!   (no `symbols`: every symbol), `{"type": "ping"}`.
//!
//! A new client is subscribed to `status` and `alerts`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tradeflow_bus::tap::Tapped;
use utoipa::ToSchema;

use crate::config::WsConfig;

pub const CHANNELS: [&str; 11] =
    ["signals", "decisions", "orders", "fills", "positions", "balances", "prices", "alerts", "status", "news", "tasks"];

/// Close code 1008 (policy violation) is what RFC 6455 offers for "you broke the rules";
/// 1013 (try again later) fits a client dropped for being slow.
const CLOSE_SLOW: u16 = 1013;
const CLOSE_IDLE: u16 = 1001;

fn channel_bit(name: &str) -> Option<u16> {
    CHANNELS.iter().position(|c| *c == name).map(|i| 1u16 << i)
}

/// One event, serialised once.
#[derive(Debug)]
pub struct Event {
    bit: u16,
    symbol: Option<String>,
    text: Utf8Bytes,
}

impl Event {
    pub fn new(channel: &str, symbol: Option<String>, body: &Value) -> Option<Event> {
        Some(Event { bit: channel_bit(channel)?, symbol, text: Utf8Bytes::from(body.to_string()) })
    }

    /// The WebSocket event for a pipeline message, or None for kinds clients do not get.
    pub fn from_tapped(t: &Tapped) -> Option<Event> {
        let (kind, channel) = match (t.stream.as_str(), t.envelope.kind.as_str()) {
            (_, "candle") => ("price_update", "prices"),
            (_, "signal") => ("signal", "signals"),
            (_, "decision") => ("decision", "decisions"),
            (_, "order_request") => ("order_requested", "orders"),
            (_, "order_intent") => ("order", "orders"),
            (_, "rejection") => ("order_rejected", "orders"),
            (_, "fill") => ("trade_executed", "fills"),
            (_, "position_update") => ("position_update", "positions"),
            (_, "account_update") => ("balance_update", "balances"),
            (_, "account_alert") | ("sys.events", _) => ("system_alert", "alerts"),
            (_, "control_command") => ("control_command", "status"),
            (_, "cycle_event") => ("cycle", "decisions"),
            (_, "news") => ("news", "news"),
            (_, "job_event") => ("job", "tasks"),
            _ => return None,
        };
        let data = t.envelope.payload_json();
        // An analysis cycle: its steps and its decisions are the arena's event types.
        let kind = match kind {
            "cycle" if data.get("phase").and_then(Value::as_str) == Some("start") => "cycle_start",
            "cycle" => "cycle_complete",
            "decision"
                if data
                    .get("candle_id")
                    .and_then(Value::as_str)
                    .is_some_and(|c| tradeflow_core::signal::cycle_of(c).is_some()) =>
            {
                "llm_decision"
            }
            // A job's event by what happened: task_started, task_progress, task_completed, ...
            "job" => {
                match (data.get("state").and_then(Value::as_str), data.get("progress").is_some_and(|p| !p.is_null())) {
                    (Some("running"), true) => "task_progress",
                    (Some("running"), false) => "task_started",
                    (Some("succeeded"), _) => "task_completed",
                    (Some("failed"), _) => "task_failed",
                    (Some("cancelled"), _) => "task_cancelled",
                    _ => "task_queued",
                }
            }
            k => k,
        };
        // A story names its symbols as a list: it goes to the subscribers of its first one;
        // a story about the market (no symbol) to every `news` subscriber.
        let symbol = match kind {
            "news" => data.get("symbols").and_then(Value::as_array).and_then(|s| s.first()),
            _ => data.get("symbol"),
        }
        .and_then(Value::as_str)
        .map(str::to_string);
        let body = json!({
            "type": kind,
            "channel": channel,
            "symbol": symbol,
            "id": t.envelope.id,
            "time": t.envelope.produced_at,
            "data": data,
        });
        Event::new(channel, symbol, &body)
    }
}

#[derive(Debug, Clone, Default)]
struct Subs {
    channels: u16,
    /// Empty: every symbol.
    symbols: BTreeSet<String>,
}

impl Subs {
    fn wants(&self, e: &Event) -> bool {
        self.channels & e.bit != 0
            && (self.symbols.is_empty() || e.symbol.as_ref().is_none_or(|s| self.symbols.contains(s)))
    }

    fn channel_names(&self) -> Vec<&'static str> {
        CHANNELS.iter().enumerate().filter(|(i, _)| self.channels & (1 << i) != 0).map(|(_, c)| *c).collect()
    }
}

/// What a client is handed: a published batch, shared by every client, and how many of its
/// events the client wanted when it was published (what its queue depth went up by).
type Share = (Arc<[Event]>, usize);

struct Slot {
    /// Unbounded as a channel; bounded by `queued`, which counts events, not batches.
    tx: mpsc::UnboundedSender<Share>,
    /// Events handed to the client and not yet written to its socket.
    queued: Arc<AtomicUsize>,
    subs: Arc<RwLock<Subs>>,
    slow: Arc<AtomicBool>,
}

/// Counters for `/ws/stats` and the metrics.
#[derive(Debug, Default)]
struct Counters {
    connected_total: AtomicU64,
    disconnected_total: AtomicU64,
    dropped_slow_total: AtomicU64,
    refused_total: AtomicU64,
    events_total: AtomicU64,
    deliveries_total: AtomicU64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WsStats {
    pub clients: usize,
    pub max_clients: usize,
    pub queue_per_client: usize,
    pub connected_total: u64,
    pub disconnected_total: u64,
    /// Clients dropped because their queue was full.
    pub dropped_slow_total: u64,
    /// Connections refused at `max_clients`.
    pub refused_total: u64,
    pub events_total: u64,
    pub deliveries_total: u64,
    /// Subscribers per channel.
    pub subscribers: HashMap<String, usize>,
}

pub struct Hub {
    clients: RwLock<HashMap<u64, Slot>>,
    next_id: AtomicU64,
    config: WsConfig,
    counters: Counters,
}

impl Hub {
    pub fn new(config: WsConfig) -> Arc<Hub> {
        Arc::new(Hub { clients: RwLock::default(), next_id: AtomicU64::new(1), config, counters: Counters::default() })
    }

    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// Hands `event` to every client that wants it; drops the ones that cannot keep up.
    pub fn publish(&self, event: Event) {
        self.publish_all(vec![event]);
    }

    /// Hands a batch of events to every client that wants any of them: the batch is shared,
    /// each such client gets one queue push and wakes once to write its share in one flush.
    pub fn publish_all(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.counters.events_total.fetch_add(events.len() as u64, Ordering::Relaxed);
        let batch: Arc<[Event]> = events.into();
        let limit = self.config.client_queue;
        let mut gone = Vec::new();
        let mut delivered = 0;
        {
            let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
            for (id, slot) in clients.iter() {
                let wanted = {
                    let Ok(subs) = slot.subs.read() else { continue };
                    batch.iter().filter(|e| subs.wants(e)).count()
                };
                if wanted == 0 {
                    continue;
                }
                if slot.queued.fetch_add(wanted, Ordering::Relaxed) + wanted > limit {
                    slot.slow.store(true, Ordering::Relaxed);
                    gone.push(*id);
                    continue;
                }
                match slot.tx.send((batch.clone(), wanted)) {
                    Ok(()) => delivered += wanted as u64,
                    Err(_) => gone.push(*id),
                }
            }
        }
        self.counters.deliveries_total.fetch_add(delivered, Ordering::Relaxed);
        if !gone.is_empty() {
            let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
            for id in gone {
                if let Some(slot) = clients.remove(&id)
                    && slot.slow.load(Ordering::Relaxed)
                {
                    self.counters.dropped_slow_total.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.read().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether one more client may connect.
    pub fn has_room(&self) -> bool {
        let room = self.client_count() < self.config.max_clients;
        if !room {
            self.counters.refused_total.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    pub fn stats(&self) -> WsStats {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        let mut subscribers: HashMap<String, usize> = CHANNELS.iter().map(|c| (c.to_string(), 0)).collect();
        for slot in clients.values() {
            if let Ok(s) = slot.subs.read() {
                for c in s.channel_names() {
                    *subscribers.entry(c.to_string()).or_default() += 1;
                }
            }
        }
        let c = &self.counters;
        WsStats {
            clients: clients.len(),
            max_clients: self.config.max_clients,
            queue_per_client: self.config.client_queue,
            connected_total: c.connected_total.load(Ordering::Relaxed),
            disconnected_total: c.disconnected_total.load(Ordering::Relaxed),
            dropped_slow_total: c.dropped_slow_total.load(Ordering::Relaxed),
            refused_total: c.refused_total.load(Ordering::Relaxed),
            events_total: c.events_total.load(Ordering::Relaxed),
            deliveries_total: c.deliveries_total.load(Ordering::Relaxed),
            subscribers,
        }
    }

    /// Serves one client until it leaves, is dropped, or stops answering.
    pub async fn serve(self: Arc<Hub>, mut socket: WebSocket) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = format!("c{id}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (tx, mut rx) = mpsc::unbounded_channel::<Share>();
        let queued = Arc::new(AtomicUsize::new(0));
        let subs = Arc::new(RwLock::new(Subs {
            channels: channel_bit("status").unwrap_or(0) | channel_bit("alerts").unwrap_or(0),
            symbols: BTreeSet::new(),
        }));
        let slow = Arc::new(AtomicBool::new(false));
        self.clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Slot { tx, queued: queued.clone(), subs: subs.clone(), slow: slow.clone() });
        self.counters.connected_total.fetch_add(1, Ordering::Relaxed);

        let welcome = json!({
            "type": "welcome",
            "client_id": client_id,
            "channels": CHANNELS,
            "subscriptions": { "channels": ["status", "alerts"], "symbols": [] },
            "heartbeat_s": self.config.heartbeat_s,
            "time": tradeflow_core::time::now_ms(),
        });
        let reason = self.run_client(&mut socket, &mut rx, &queued, &subs, &slow, welcome).await;
        self.clients.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.counters.disconnected_total.fetch_add(1, Ordering::Relaxed);
        if let Some((code, why)) = reason {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(why) }))),
            )
            .await;
        }
        tracing::debug!(client = %client_id, "websocket client left");
    }

    /// The client loop; returns the close frame to send, if any.
    async fn run_client(
        &self,
        socket: &mut WebSocket,
        rx: &mut mpsc::UnboundedReceiver<Share>,
        queued: &AtomicUsize,
        subs: &RwLock<Subs>,
        slow: &AtomicBool,
        welcome: Value,
    ) -> Option<(u16, String)> {
        if socket.send(Message::Text(Utf8Bytes::from(welcome.to_string()))).await.is_err() {
            return None;
        }
        let beat = Duration::from_secs(self.config.heartbeat_s);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let mut last_heard = Instant::now();
        // Reused across wakes: the frames of one flush.
        let mut frames: Vec<Utf8Bytes> = Vec::new();
        loop {
            tokio::select! {
                share = rx.recv() => {
                    let Some(mut share) = share else {
                        return if slow.load(Ordering::Relaxed) {
                            Some((CLOSE_SLOW, format!("client too slow: more than {} events queued", self.config.client_queue)))
                        } else {
                            None
                        };
                    };
                    // Everything already queued goes out in the same flush. The subscription
                    // is read again here: an unsubscribe takes effect at once.
                    {
                        let s = subs.read().unwrap_or_else(|p| p.into_inner());
                        loop {
                            let (batch, wanted) = share;
                            frames.extend(batch.iter().filter(|e| s.wants(e)).map(|e| e.text.clone()));
                            queued.fetch_sub(wanted, Ordering::Relaxed);
                            if frames.len() >= 256 {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(more) => share = more,
                                Err(_) => break,
                            }
                        }
                    }
                    for text in frames.drain(..) {
                        if socket.feed(Message::Text(text)).await.is_err() {
                            return None;
                        }
                    }
                    if futures_util::SinkExt::flush(socket).await.is_err() {
                        return None;
                    }
                }
                incoming = socket.recv() => {
                    let Some(Ok(msg)) = incoming else { return None };
                    last_heard = Instant::now();
                    let reply = match msg {
                        Message::Text(t) => Some(handle_request(t.as_str(), subs)),
                        Message::Binary(_) => Some(error_reply("unsupported", "binary frames are not understood; send JSON text")),
                        Message::Close(_) => return None,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some(r) = reply
                        && socket.send(Message::Text(Utf8Bytes::from(r.to_string()))).await.is_err()
                    {
                        return None;
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > beat * 3 {
                        return Some((CLOSE_IDLE, "no pong or message for three heartbeats".into()));
                    }
                    let hb = json!({ "type": "heartbeat", "time": tradeflow_core::time::now_ms() });
                    if socket.send(Message::Text(Utf8Bytes::from(hb.to_string()))).await.is_err()
                        || socket.send(Message::Ping(Default::default())).await.is_err()
                    {
                        return None;
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Subscribe {
        #[serde(default)]
        channels: Vec<String>,
        symbols: Option<Vec<String>>,
    },
    Unsubscribe {
        #[serde(default)]
        channels: Vec<String>,
        symbols: Option<Vec<String>>,
    },
    Ping,
}

fn error_reply(code: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "code": code, "message": message } })
}

fn handle_request(text: &str, subs: &RwLock<Subs>) -> Value {
    let request: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return error_reply("bad_request", &format!("cannot read the request: {e}")),
    };
    let (subscribe, channels, symbols) = match request {
        Request::Ping => return json!({ "type": "pong", "time": tradeflow_core::time::now_ms() }),
        Request::Subscribe { channels, symbols } => (true, channels, symbols),
        Request::Unsubscribe { channels, symbols } => (false, channels, symbols),
    };
    let mut bits = 0u16;
    for c in &channels {
        match channel_bit(c) {
            Some(b) => bits |= b,
            None => {
                return error_reply(
                    "unknown_channel",
                    &format!("unknown channel {c:?}; channels: {}", CHANNELS.join(", ")),
                );
            }
        }
    }
    let mut s = subs.write().unwrap_or_else(|p| p.into_inner());
    if subscribe {
        s.channels |= bits;
        match symbols {
            // Naming symbols narrows to them; subscribing without symbols opens every one.
            Some(list) => s.symbols.extend(list),
            None => s.symbols.clear(),
        }
    } else {
        s.channels &= !bits;
        if let Some(list) = symbols {
            for sym in list {
                s.symbols.remove(&sym);
            }
        }
    }
    json!({
        "type": if subscribe { "subscribed" } else { "unsubscribed" },
        "channels": s.channel_names(),
        "symbols": s.symbols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_filter_channels_and_symbols() {
        let subs = RwLock::new(Subs::default());
        let r = handle_request(r#"{"type":"subscribe","channels":["signals"],"symbols":["BTCUSD"]}"#, &subs);
        assert_eq!(r["type"], "subscribed");
        let ev = |ch: &str, sym: Option<&str>| Event::new(ch, sym.map(str::to_string), &json!({})).unwrap();
        let s = subs.read().unwrap().clone();
        assert!(s.wants(&ev("signals", Some("BTCUSD"))));
        assert!(!s.wants(&ev("signals", Some("ETHUSD"))));
        assert!(!s.wants(&ev("fills", Some("BTCUSD"))));
        assert!(s.wants(&ev("signals", None)), "events without a symbol pass a symbol filter");
        let r = handle_request(r#"{"type":"subscribe","channel":["x"]}"#, &subs);
        assert_eq!(r["type"], "error");
        let r = handle_request(r#"{"type":"subscribe","channels":["nope"]}"#, &subs);
        assert_eq!(r["error"]["code"], "unknown_channel");
        let r = handle_request(r#"{"type":"unsubscribe","channels":["signals"]}"#, &subs);
        assert_eq!(r["channels"], json!([]));
        assert_eq!(handle_request(r#"{"type":"ping"}"#, &subs)["type"], "pong");
    }

    #[test]
    fn a_news_story_goes_to_the_news_channel_under_its_first_symbol() {
        let tapped = |symbols: &[&str]| {
            let item = tradeflow_core::news::NewsItem {
                id: "news:0123".into(),
                source: "wire".into(),
                title: "Bitcoin tops $100k".into(),
                link: String::new(),
                summary: String::new(),
                published_at: 1,
                fetched_at: 2,
                symbols: symbols.iter().map(|s| s.to_string()).collect(),
            };
            let id = tradeflow_core::MessageId::new(item.id.clone()).unwrap();
            let bytes = tradeflow_bus::Envelope::encode_new(&id, item.key(), None, "news", &item).unwrap();
            Tapped {
                stream: "md.news".into(),
                partition: 0,
                entry_id: "1-0".into(),
                envelope: tradeflow_bus::Envelope::decode(&bytes).unwrap(),
            }
        };
        let e = Event::from_tapped(&tapped(&["BTCUSD", "ETHUSD"])).unwrap();
        assert_eq!((e.bit, e.symbol.as_deref()), (channel_bit("news").unwrap(), Some("BTCUSD")));
        let body: Value = serde_json::from_str(e.text.as_str()).unwrap();
        assert_eq!((body["type"].as_str(), body["channel"].as_str()), (Some("news"), Some("news")));
        assert_eq!(body["data"]["title"], "Bitcoin tops $100k");
        let market = Event::from_tapped(&tapped(&[])).unwrap();
        assert_eq!(market.symbol, None, "a story about the market reaches every news subscriber");
    }

    #[test]
    fn a_full_queue_drops_only_that_client() {
        let hub = Hub::new(WsConfig { client_queue: 2, ..WsConfig::default() });
        let mut receivers = Vec::new();
        let mut depths = Vec::new();
        for id in 0..2u64 {
            let (tx, rx) = mpsc::unbounded_channel();
            let subs =
                Arc::new(RwLock::new(Subs { channels: channel_bit("prices").unwrap(), symbols: BTreeSet::new() }));
            let queued = Arc::new(AtomicUsize::new(0));
            depths.push(queued.clone());
            hub.clients.write().unwrap().insert(id, Slot { tx, queued, subs, slow: Arc::new(AtomicBool::new(false)) });
            receivers.push(rx);
        }
        let mut fast = receivers.pop().unwrap();
        let fast_depth = depths.pop().unwrap();
        for i in 0..5 {
            hub.publish(Event::new("prices", None, &json!({ "i": i })).unwrap());
            // Only a prices event reaches a prices subscriber's queue.
            hub.publish(Event::new("fills", None, &json!({ "i": i })).unwrap());
            while let Ok((_, wanted)) = fast.try_recv() {
                fast_depth.fetch_sub(wanted, Ordering::Relaxed);
            }
        }
        assert_eq!(hub.client_count(), 1, "the stalled client is dropped, the other stays");
        assert_eq!(hub.stats().dropped_slow_total, 1);
    }
}
