//! The edge's live view: the latest price per symbol, the latest state of every account and
//! position, the last signal of every model and decision of every profile, folded from the
//! tap over the pipeline's streams. Hot read routes (`/market/prices`, `/trading/status`)
//! answer from here without a round trip; history comes from the SQL store.
//!
//! At start-up the view is seeded from the store (see `seed`), then kept current by the tap, so
//! a restarted edge does not answer "no prices" until the next candle.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;
use tradeflow_bus::Envelope;
use tradeflow_core::Payload;
use tradeflow_core::decision::Decision;
use tradeflow_core::execution::{AccountUpdate, PositionStatus, PositionUpdate};
use tradeflow_core::market::Candle;
use tradeflow_core::signal::{Signal, SignalStatus};
use utoipa::ToSchema;

/// The last bar of a symbol (its shortest interval wins when several are fed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceView {
    pub symbol: String,
    pub source: String,
    pub interval: String,
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// When the edge saw it (epoch ms).
    pub received_at: i64,
}

/// What the edge knows of one model from its signals.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ModelView {
    pub model: String,
    pub kind: String,
    pub signals: u64,
    pub errors: u64,
    pub last_symbol: Option<String>,
    pub last_action: Option<String>,
    pub last_confidence: Option<f64>,
    pub last_latency_us: Option<u64>,
    /// Mean latency over the signals seen, µs.
    pub mean_latency_us: f64,
    /// When the last signal was produced (epoch ms).
    pub last_signal_at: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    prices: BTreeMap<String, PriceView>,
    models: BTreeMap<String, ModelView>,
    decisions: BTreeMap<String, Decision>,
    accounts: BTreeMap<String, AccountUpdate>,
    positions: BTreeMap<(String, String), PositionUpdate>,
    events: u64,
    last_event_at: Option<i64>,
}

/// Shared, updated by the tap task, read by handlers.
#[derive(Debug, Default)]
pub struct Live {
    inner: RwLock<Inner>,
    /// Since when (epoch ms) the tap has been failing to read; 0 while it reads.
    tap_failing_since: AtomicI64,
}

fn interval_rank(i: &str) -> i64 {
    i.parse::<tradeflow_core::market::Interval>().map(|i| i.millis()).unwrap_or(i64::MAX)
}

impl Live {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds one message in. Kinds the view does not keep are ignored.
    pub fn apply(&self, env: &Envelope) {
        let mut s = self.write();
        s.events += 1;
        s.last_event_at = Some(env.produced_at);
        match env.kind.as_str() {
            Candle::KIND => {
                if let Ok(c) = env.open::<Candle>() {
                    s.put_price(PriceView {
                        symbol: c.symbol.clone(),
                        source: c.source.clone(),
                        interval: c.interval.as_str().into(),
                        open_time: c.bar.open_time(),
                        open: c.bar.open(),
                        high: c.bar.high(),
                        low: c.bar.low(),
                        close: c.bar.close(),
                        volume: c.bar.volume(),
                        received_at: tradeflow_core::time::now_ms(),
                    });
                }
            }
            Signal::KIND => {
                if let Ok(sig) = env.open::<Signal>() {
                    let m = s.models.entry(sig.model.clone()).or_default();
                    m.model = sig.model.clone();
                    m.kind = format!("{:?}", sig.model_kind).to_lowercase();
                    m.signals += 1;
                    m.mean_latency_us += (sig.latency_us as f64 - m.mean_latency_us) / m.signals as f64;
                    m.last_symbol = Some(sig.symbol.clone());
                    m.last_action = Some(sig.action.as_str().into());
                    m.last_confidence = Some(sig.confidence);
                    m.last_latency_us = Some(sig.latency_us);
                    m.last_signal_at = Some(env.produced_at);
                    if let SignalStatus::Error { reason } = &sig.status {
                        m.errors += 1;
                        m.last_error = Some(reason.clone());
                    }
                }
            }
            Decision::KIND => {
                if let Ok(d) = env.open::<Decision>() {
                    s.decisions.insert(d.profile.clone(), d);
                }
            }
            AccountUpdate::KIND => {
                if let Ok(a) = env.open::<AccountUpdate>() {
                    s.put_account(a);
                }
            }
            PositionUpdate::KIND => {
                if let Ok(p) = env.open::<PositionUpdate>() {
                    s.put_position(p);
                }
            }
            _ => {}
        }
    }

    pub fn seed_price(&self, p: PriceView) {
        self.write().put_price(p);
    }

    pub fn seed_account(&self, a: AccountUpdate) {
        self.write().put_account(a);
    }

    pub fn seed_position(&self, p: PositionUpdate) {
        self.write().put_position(p);
    }

    pub fn prices(&self) -> Vec<PriceView> {
        self.read().prices.values().cloned().collect()
    }

    pub fn price(&self, symbol: &str) -> Option<PriceView> {
        self.read().prices.get(symbol).cloned()
    }

    pub fn models(&self) -> Vec<ModelView> {
        self.read().models.values().cloned().collect()
    }

    pub fn decisions(&self) -> Vec<Decision> {
        self.read().decisions.values().cloned().collect()
    }

    pub fn accounts(&self) -> BTreeMap<String, AccountUpdate> {
        self.read().accounts.clone()
    }

    pub fn account(&self, id: &str) -> Option<AccountUpdate> {
        self.read().accounts.get(id).cloned()
    }

    /// Open positions, of one account or all.
    pub fn positions(&self, account: Option<&str>) -> Vec<PositionUpdate> {
        self.read().positions.values().filter(|p| account.is_none_or(|a| p.account == a)).cloned().collect()
    }

    /// (events folded, produced_at of the last one)
    pub fn activity(&self) -> (u64, Option<i64>) {
        let s = self.read();
        (s.events, s.last_event_at)
    }

    /// The tap could not read (from `now`, epoch ms, unless it was failing already).
    pub fn tap_failed(&self, now: i64) {
        let _ = self.tap_failing_since.compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The tap reads again.
    pub fn tap_read(&self) {
        self.tap_failing_since.store(0, Ordering::Relaxed);
    }

    /// Since when the view may be stale: the time the tap began failing, while it fails.
    pub fn stale_since(&self) -> Option<i64> {
        Some(self.tap_failing_since.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

impl Inner {
    fn put_price(&mut self, p: PriceView) {
        match self.prices.get(&p.symbol) {
            // Keep the shortest interval; within it, the latest bar.
            Some(cur)
                if interval_rank(&cur.interval) < interval_rank(&p.interval)
                    || (cur.interval == p.interval && cur.open_time > p.open_time) => {}
            _ => {
                self.prices.insert(p.symbol.clone(), p);
            }
        }
    }

    fn put_account(&mut self, a: AccountUpdate) {
        if self.accounts.get(&a.account).is_none_or(|cur| cur.seq <= a.seq) {
            self.accounts.insert(a.account.clone(), a);
        }
    }

    fn put_position(&mut self, p: PositionUpdate) {
        let key = (p.account.clone(), p.symbol.clone());
        if self.positions.get(&key).is_some_and(|cur| cur.seq > p.seq) {
            return;
        }
        if p.status == PositionStatus::Closed || p.quantity == 0.0 {
            self.positions.remove(&key);
        } else {
            self.positions.insert(key, p);
        }
    }
}
