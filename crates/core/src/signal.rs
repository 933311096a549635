//! The `Signal` message of `inf.signals`: one per model per candle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::market::Interval;
use crate::payload::Payload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Long,
    Short,
    Hold,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
            Self::Hold => "hold",
        }
    }
}

/// What produced a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Rule,
    Ml,
    Llm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    TrendingUp,
    TrendingDown,
    Sideways,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    ActiveTrading,
    Consolidation,
    Breakout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Normal,
    High,
}

/// The market as every model sees it at a candle; stored with each signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketCondition {
    pub trend: Trend,
    pub phase: Phase,
    /// ADX(14), 0–100; `None` while it warms up.
    pub trend_strength: Option<f64>,
    /// Lowest low / highest high of the recent window.
    pub support: Option<f64>,
    pub resistance: Option<f64>,
    /// ATR as a share of the close, classified.
    pub volatility: Option<Level>,
    pub atr_pct: Option<f64>,
    /// Volume against its 20-bar average, classified.
    pub volume: Option<Level>,
    pub volume_ratio: Option<f64>,
}

/// Whether the model produced a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalStatus {
    Ok,
    /// The model failed or timed out; the action is `hold` and says nothing.
    Error {
        reason: String,
    },
}

/// `Ok`, to borrow for a [`SignalView`] made of no signal.
pub static STATUS_OK: SignalStatus = SignalStatus::Ok;

/// One model's view of one candle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Id of the candle it reads.
    pub candle_id: String,
    pub symbol: String,
    pub interval: Interval,
    /// Open time of the candle.
    pub open_time: i64,
    /// The candle's open, so that a paper book filling at the next bar's open
    /// (`fill_at = "next_open"`) has it. `None` in signals from before it was carried.
    #[serde(default)]
    pub open: Option<f64>,
    /// The candle's high and low, so that later stages (paper stops, liquidation) see the
    /// whole bar.
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub model: String,
    pub model_kind: ModelKind,
    pub action: Action,
    /// 0–1.
    pub confidence: f64,
    /// Per-strategy scores, 0–1 each (a single strategy has one).
    pub scores: BTreeMap<String, f64>,
    pub reasoning: String,
    /// The inputs it used, by name.
    pub features: BTreeMap<String, f64>,
    pub market: MarketCondition,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Time the model took, in microseconds.
    pub latency_us: u64,
    pub status: SignalStatus,
    /// Set on the signals of an analysis cycle (a `trigger` command), absent on a candle's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CycleTag>,
}

/// What marks a signal as part of an analysis cycle: an operator's or the scheduler's
/// `trigger`, which the inference workers obey by analysing the latest candle of each symbol
/// they hold once more, now.
///
/// Such a signal reads the latest candle (its indicators, its market condition, its prices for
/// the analysts), but it is its own input downstream: its `candle_id` is `<candle id>/trigger:
/// <command id>` (so its id is `<candle id>/trigger:<command id>/<model>`, and the ensemble
/// joins the cycle's signals apart from the candle's own), its `open_time` is the candle's
/// plus the cycle's number on that candle (1, 2, ...: the ensemble and risk take only inputs
/// newer than the last of a series, and the next candle opens an interval later), and its bar
/// is flat at the candle's close (the candle's range has been applied to the books once
/// already; a cycle must not stop anything out on it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleTag {
    /// Id of the `trigger` command.
    pub id: String,
    /// Profiles that decide on the cycle's signals; empty: every profile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

/// The candle id of a cycle's signals about `candle_id`.
pub fn cycle_candle_id(candle_id: &str, cycle: &str) -> String {
    format!("{candle_id}/trigger:{cycle}")
}

/// The cycle (`trigger` command id) a candle id of [`cycle_candle_id`] names, if it is one.
pub fn cycle_of(candle_id: &str) -> Option<&str> {
    candle_id.split_once("/trigger:").map(|(_, c)| c)
}

impl Signal {
    /// `<candle id>/<model>` (DESIGN invariant 2).
    pub fn id(&self) -> MessageId {
        MessageId::child_of(&self.candle_id, &self.model)
    }
}

impl Payload for Signal {
    const KIND: &'static str = "signal";
    const VERSION: u16 = 2;
}

/// What an ensemble reads of a [`Signal`]: decoded from a signal's own bytes (same kind and
/// version), the other fields skipped rather than built. Why: the ensemble worker spent about
/// a third of its time decoding signals and a seventh dropping them, mostly the scores,
/// features and market condition it never reads. Never sent: it is a view for decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalVote {
    pub candle_id: String,
    pub symbol: String,
    pub interval: Interval,
    pub open_time: i64,
    #[serde(default)]
    pub open: Option<f64>,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub model: String,
    pub action: Action,
    pub confidence: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub status: SignalStatus,
    #[serde(default)]
    pub cycle: Option<CycleTag>,
}

impl SignalVote {
    /// The signal's id, `<candle id>/<model>`.
    pub fn id(&self) -> MessageId {
        MessageId::child_of(&self.candle_id, &self.model)
    }
}

impl Payload for SignalVote {
    const KIND: &'static str = Signal::KIND;
    const VERSION: u16 = Signal::VERSION;
}

impl From<&Signal> for SignalVote {
    fn from(s: &Signal) -> Self {
        SignalView::from(s).into()
    }
}

impl From<SignalView<'_>> for SignalVote {
    /// An owned copy of what the view shows.
    fn from(v: SignalView<'_>) -> Self {
        SignalVote {
            candle_id: v.candle_id.to_string(),
            symbol: v.symbol.to_string(),
            interval: v.interval,
            open_time: v.open_time,
            open: v.open,
            high: v.high,
            low: v.low,
            close: v.close,
            model: v.model.to_string(),
            action: v.action,
            confidence: v.confidence,
            stop_loss: v.stop_loss,
            take_profit: v.take_profit,
            status: v.status.clone(),
            cycle: v.cycle.cloned(),
        }
    }
}

/// What an ensemble reads of a signal, borrowed from a whole [`Signal`] (tests, tools), a
/// decoded [`SignalVote`] (the worker) or a backtest's rule vote: nothing is copied before the
/// join needs it.
#[derive(Debug, Clone, Copy)]
pub struct SignalView<'a> {
    pub candle_id: &'a str,
    pub symbol: &'a str,
    pub interval: Interval,
    pub open_time: i64,
    pub open: Option<f64>,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub model: &'a str,
    pub action: Action,
    pub confidence: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub status: &'a SignalStatus,
    pub cycle: Option<&'a CycleTag>,
}

impl SignalView<'_> {
    /// The signal's id, `<candle id>/<model>`.
    pub fn id(&self) -> MessageId {
        MessageId::child_of(self.candle_id, self.model)
    }
}

/// `From` a message that has a signal's fields under their names (a [`Signal`], a
/// [`SignalVote`]): one list of the fields for both.
macro_rules! view_from {
    ($($message:ty),+) => {$(
        impl<'a> From<&'a $message> for SignalView<'a> {
            fn from(s: &'a $message) -> Self {
                Self {
                    candle_id: &s.candle_id,
                    symbol: &s.symbol,
                    interval: s.interval,
                    open_time: s.open_time,
                    open: s.open,
                    high: s.high,
                    low: s.low,
                    close: s.close,
                    model: &s.model,
                    action: s.action,
                    confidence: s.confidence,
                    stop_loss: s.stop_loss,
                    take_profit: s.take_profit,
                    status: &s.status,
                    cycle: s.cycle.as_ref(),
                }
            }
        }
    )+};
}

view_from!(Signal, SignalVote);
