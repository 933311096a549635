//! The `Decision` message of `ens.decisions`: one per ensemble profile per candle.

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::market::Interval;
use crate::payload::Payload;
use crate::signal::{Action, SignalStatus};

/// One model's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub model: String,
    pub action: Action,
    pub confidence: f64,
    /// The profile's weight for the model.
    pub weight: f64,
    /// An error signal is recorded but does not vote.
    pub status: SignalStatus,
}

/// Why the decision was taken when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every model of the profile answered.
    Complete,
    /// The quorum was in.
    Quorum,
    /// The deadline passed; decided on what had arrived.
    Deadline,
    /// An operator's manual paper order (the edge's `POST /paper/orders` and position
    /// close), not an ensemble vote. Risk treats it like any decision, except that a manual
    /// `hold` closes the position in the symbol (and does nothing when there is none).
    Manual,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub candle_id: String,
    pub symbol: String,
    pub interval: Interval,
    pub open_time: i64,
    /// The candle's open (from its signals); `None` when they did not carry it (older
    /// signals, manual decisions).
    #[serde(default)]
    pub open: Option<f64>,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub profile: String,
    pub action: Action,
    /// 0–1.
    pub confidence: f64,
    pub contributions: Vec<Contribution>,
    /// Models of the profile that had not answered when it was decided.
    pub missing: Vec<String>,
    pub trigger: Trigger,
    pub reasoning: String,
    /// Suggested exits, from the contributing signals that agree with the decision.
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

impl Decision {
    /// `<candle id>/<profile>` (DESIGN invariant 2).
    pub fn id(&self) -> MessageId {
        MessageId::child_of(&self.candle_id, &self.profile)
    }
}

impl Payload for Decision {
    const KIND: &'static str = "decision";
    const VERSION: u16 = 2;
}

/// A signal that arrived after its candle was decided: recorded (audit.events), never decided
/// on again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateSignal {
    pub signal_id: String,
    pub candle_id: String,
    pub model: String,
    pub symbol: String,
}

impl LateSignal {
    pub fn id(&self) -> MessageId {
        MessageId::from_parts(&[&self.signal_id]).child("late")
    }
}

impl Payload for LateSignal {
    const KIND: &'static str = "signal_late";
    const VERSION: u16 = 1;
}
