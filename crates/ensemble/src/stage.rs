//! The join: signals of one candle collected until each profile can decide.
//!
//! A profile decides a candle once, when every one of its models answered, or when its quorum
//! is in, or at its deadline (measured from the candle's first signal) with whatever arrived,
//! possibly nothing: every profile decides every candle that had any signal, hold included.
//! Time is an explicit input (`now_ms`), so the backtester drives the same code
//! deterministically.
//!
//! Signals of a series arrive in candle order (they are partitioned by symbol and produced in
//! candle order), so a signal for a candle that is neither pending nor newer than the last
//! decided candle of its series is late: it is recorded, never decided on again.
//!
//! The signals of an analysis cycle (a `trigger`, see [`CycleTag`]) join under the cycle's own
//! candle id, apart from the candle's: a cycle for some profiles is decided by those alone
//! (the others count as decided from the start), and once every profile has decided, a
//! [`CycleEvent`] `complete` says so ([`EnsembleStage::take_cycle_events`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tradeflow_core::control::{CycleEvent, CyclePhase};
use tradeflow_core::decision::{Contribution, Decision, LateSignal, Trigger};
use tradeflow_core::market::Interval;
use tradeflow_core::numfmt;
use tradeflow_core::signal::{Action, CycleTag, Signal, SignalStatus, SignalView, SignalVote};

use crate::combine::{Vote, combine};
use crate::profile::Profile;
use crate::small_map::{SmallMap, SmallSet};

/// What arrived from one model for one candle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Answer {
    action: Action,
    confidence: f64,
    ok: bool,
    error: Option<String>,
    stop_loss: Option<f64>,
    take_profit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Join {
    symbol: String,
    interval: Interval,
    open_time: i64,
    /// The candle's open, from its first signal (absent from older checkpoints).
    #[serde(default)]
    open: Option<f64>,
    high: f64,
    low: f64,
    close: f64,
    first_seen_ms: i64,
    answers: SmallMap<Answer>,
    decided: SmallSet,
    /// The analysis cycle the join is for (absent from older checkpoints).
    #[serde(default)]
    cycle: Option<CycleTag>,
    /// Per profile (in configuration order), how many of its models have answered. Why: it
    /// was counted afresh for every profile at every signal. Absent from older checkpoints
    /// and dropped when the profiles change: [`Join::arrived`] counts it again then.
    #[serde(default)]
    arrived: Vec<usize>,
}

impl Join {
    /// How many of `profiles[i]`'s models have answered, kept up to date as answers arrive.
    fn arrived(&mut self, profiles: &[Profile], i: usize) -> usize {
        if self.arrived.len() != profiles.len() {
            let answers = &self.answers;
            self.arrived =
                profiles.iter().map(|p| p.models.keys().filter(|m| answers.contains_key(m)).count()).collect();
        }
        self.arrived[i]
    }

    /// Records `model`'s answer, counting it for every profile that weighs it.
    fn answered(&mut self, profiles: &[Profile], model: &str, answer: Answer) {
        self.answers.insert(model.to_string(), answer);
        if self.arrived.len() == profiles.len() {
            for (count, p) in self.arrived.iter_mut().zip(profiles) {
                *count += usize::from(p.models.contains_key(model));
            }
        }
    }
}

/// What one input produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub decisions: Vec<Decision>,
    pub late: Vec<LateSignal>,
    /// A signal seen before (a redelivery): nothing to do.
    pub duplicate: bool,
}

/// Checkpointed state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    /// Candle id → its join.
    pending: SmallMap<Join>,
    /// "symbol:interval" → open time of the newest candle decided by every profile.
    watermark: BTreeMap<String, i64>,
}

#[derive(Debug, Clone)]
pub struct EnsembleStage {
    profiles: Arc<Vec<Profile>>,
    state: State,
    /// Cycles completed since the last [`EnsembleStage::take_cycle_events`].
    cycle_events: Vec<CycleEvent>,
    /// A watermark key being looked up (kept to spare an allocation per candle; not state).
    key: String,
}

const SNAPSHOT_VERSION: u16 = 2;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u16,
    state: State,
}

impl EnsembleStage {
    pub fn new(profiles: Arc<Vec<Profile>>) -> Self {
        Self { profiles, state: State::default(), cycle_events: Vec::new(), key: String::new() }
    }

    pub fn restore(profiles: Arc<Vec<Profile>>, snapshot: &[u8]) -> Result<Self, String> {
        let s: Snapshot =
            rmp_serde::from_slice(snapshot).map_err(|e| format!("ensemble checkpoint does not decode: {e}"))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!("ensemble checkpoint has layout {}, this build reads {SNAPSHOT_VERSION}", s.version));
        }
        Ok(Self { profiles, state: s.state, cycle_events: Vec::new(), key: String::new() })
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(&Snapshot { version: SNAPSHOT_VERSION, state: self.state.clone() })
            .map_err(|e| format!("cannot encode the ensemble checkpoint: {e}"))
    }

    /// The `complete` events of the cycles decided since the last call, for `audit.events`.
    pub fn take_cycle_events(&mut self) -> Vec<CycleEvent> {
        std::mem::take(&mut self.cycle_events)
    }

    /// Candles waiting for at least one profile.
    pub fn pending(&self) -> usize {
        self.state.pending.len()
    }

    /// The earliest deadline among pending candles, for the runner's timer.
    pub fn next_deadline(&self) -> Option<i64> {
        self.state
            .pending
            .values()
            .flat_map(|j| {
                self.profiles
                    .iter()
                    .filter(|p| !j.decided.contains(&p.name))
                    .map(|p| j.first_seen_ms + p.deadline_ms as i64)
            })
            .min()
    }

    /// [`EnsembleStage::on_signal_vote`] with a whole signal (tests, tools, the backtester).
    pub fn on_signal(&mut self, signal: &Signal, now_ms: i64) -> Output {
        self.on_vote(SignalView::from(signal), now_ms)
    }

    /// Takes one model's answer for a candle: joins it, and decides every profile whose
    /// models are all in or whose quorum is reached.
    pub fn on_signal_vote(&mut self, signal: &SignalVote, now_ms: i64) -> Output {
        self.on_vote(SignalView::from(signal), now_ms)
    }

    /// Takes one model's answer as a borrowed view (the backtester's rule votes, which are
    /// never whole signals).
    pub fn on_view(&mut self, signal: SignalView<'_>, now_ms: i64) -> Output {
        self.on_vote(signal, now_ms)
    }

    fn on_vote(&mut self, signal: SignalView<'_>, now_ms: i64) -> Output {
        let mut out = Output::default();
        // The series key is built only for a candle not yet pending: most signals join one.
        let pending = self.state.pending.contains_key(signal.candle_id);
        if !pending
            && self
                .state
                .watermark
                .get(series_key(&mut self.key, signal.symbol, signal.interval))
                .is_some_and(|w| signal.open_time <= *w)
        {
            out.late.push(LateSignal {
                signal_id: signal.id().to_string(),
                candle_id: signal.candle_id.to_string(),
                model: signal.model.to_string(),
                symbol: signal.symbol.to_string(),
            });
            return out;
        }
        if !pending {
            // The candle id is copied once per candle, not once per signal.
            let join = Join {
                symbol: signal.symbol.to_string(),
                interval: signal.interval,
                open_time: signal.open_time,
                open: signal.open,
                high: signal.high,
                low: signal.low,
                close: signal.close,
                first_seen_ms: now_ms,
                answers: SmallMap::default(),
                // A cycle for some profiles: the others have nothing to decide.
                decided: match signal.cycle {
                    Some(c) if !c.profiles.is_empty() => {
                        self.profiles.iter().filter(|p| !c.profiles.contains(&p.name)).map(|p| p.name.clone()).collect()
                    }
                    _ => SmallSet::default(),
                },
                cycle: signal.cycle.cloned(),
                arrived: vec![0; self.profiles.len()],
            };
            self.state.pending.insert(signal.candle_id.to_string(), join);
        }
        let Some(join) = self.state.pending.get_mut(signal.candle_id) else { return out };
        if join.answers.contains_key(signal.model) {
            out.duplicate = true;
            return out;
        }
        let (ok, error) = match signal.status {
            SignalStatus::Ok => (true, None),
            SignalStatus::Error { reason } => (false, Some(reason.clone())),
        };
        join.answered(
            &self.profiles,
            signal.model,
            Answer {
                action: signal.action,
                confidence: signal.confidence,
                ok,
                error,
                stop_loss: signal.stop_loss,
                take_profit: signal.take_profit,
            },
        );
        for (i, profile) in self.profiles.iter().enumerate() {
            // Fewer answers in all than the profile's quorum (or its model count, when that
            // is smaller): neither complete nor quorate, whatever they are. Skips counting.
            if join.answers.len() < profile.quorum().min(profile.models.len()) {
                continue;
            }
            if join.decided.contains(&profile.name) || !profile.models.contains_key(signal.model) {
                continue;
            }
            let arrived = join.arrived(&self.profiles, i);
            let trigger = if arrived == profile.models.len() {
                Some(Trigger::Complete)
            } else if arrived >= profile.quorum() {
                Some(Trigger::Quorum)
            } else {
                None
            };
            if let Some(trigger) = trigger {
                out.decisions.push(decide(signal.candle_id, join, profile, trigger));
            }
        }
        self.retire(signal.candle_id, now_ms);
        out
    }

    /// Decides every profile whose deadline for a pending candle has passed.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<Decision> {
        let mut out = Vec::new();
        let due: Vec<(String, usize)> = self
            .state
            .pending
            .iter()
            .flat_map(|(id, join)| {
                self.profiles
                    .iter()
                    .enumerate()
                    .filter(move |(_, p)| {
                        !join.decided.contains(&p.name) && join.first_seen_ms + p.deadline_ms as i64 <= now_ms
                    })
                    .map(move |(i, _)| (id.clone(), i))
            })
            .collect();
        for (id, i) in &due {
            if let Some(join) = self.state.pending.get_mut(id) {
                out.push(decide(id, join, &self.profiles[*i], Trigger::Deadline));
            }
        }
        let ids: BTreeSet<String> = due.into_iter().map(|(id, _)| id).collect();
        for id in ids {
            self.retire(&id, now_ms);
        }
        out
    }

    /// Drops a candle every profile has decided, moving its series' watermark; a cycle's
    /// completion is recorded.
    fn retire(&mut self, candle_id: &str, now_ms: i64) {
        let done = self
            .state
            .pending
            .get(candle_id)
            .is_some_and(|j| self.profiles.iter().all(|p| j.decided.contains(&p.name)));
        if done && let Some(join) = self.state.pending.remove(candle_id) {
            let key = series_key(&mut self.key, &join.symbol, join.interval);
            match self.state.watermark.get_mut(key) {
                Some(w) => *w = (*w).max(join.open_time),
                None => {
                    self.state.watermark.insert(key.to_string(), join.open_time);
                }
            }
            if let Some(cycle) = join.cycle {
                let decided = join
                    .decided
                    .into_iter()
                    .filter(|p| cycle.profiles.is_empty() || cycle.profiles.contains(p))
                    .collect();
                self.cycle_events.push(CycleEvent {
                    cycle: cycle.id,
                    phase: CyclePhase::Complete,
                    symbol: join.symbol,
                    candle_id: candle_id.to_string(),
                    models: join.answers.into_keys().collect(),
                    decided,
                    actor: String::new(),
                    time: now_ms,
                });
            }
        }
    }
}

/// `symbol:interval`, the watermark's key, written into `buf` (built per candle: into a kept
/// buffer, not a new string).
fn series_key<'b>(buf: &'b mut String, symbol: &str, interval: Interval) -> &'b str {
    buf.clear();
    buf.push_str(symbol);
    buf.push(':');
    buf.push_str(interval.as_str());
    buf
}

/// The decision of `profile` on one candle, from what has arrived; marks it decided.
fn decide(candle_id: &str, join: &mut Join, profile: &Profile, trigger: Trigger) -> Decision {
    join.decided.insert(profile.name.clone());
    let mut contributions = Vec::with_capacity(profile.models.len());
    let mut votes = Vec::with_capacity(profile.models.len());
    let mut missing = Vec::new();
    // Exits from the most confident contributor that agrees with the decision, found in the
    // same pass (the decision's action is known only after it: kept per action).
    let mut most_confident: [Option<&Answer>; 2] = [None, None];
    for (model, weight, answer) in joined(&profile.models, &join.answers) {
        match answer {
            Some(a) => {
                contributions.push(Contribution {
                    model: model.clone(),
                    action: a.action,
                    confidence: a.confidence,
                    weight,
                    status: match &a.error {
                        None => SignalStatus::Ok,
                        Some(reason) => SignalStatus::Error { reason: reason.clone() },
                    },
                });
                if a.ok {
                    votes.push(Vote { action: a.action, confidence: a.confidence, weight });
                    let slot = match a.action {
                        Action::Long => Some(0),
                        Action::Short => Some(1),
                        Action::Hold => None,
                    };
                    // `max_by` keeps the last of equals: so does `>=`.
                    if let Some(slot) = slot
                        && most_confident[slot].is_none_or(|b| a.confidence.total_cmp(&b.confidence).is_ge())
                    {
                        most_confident[slot] = Some(a);
                    }
                }
            }
            None => missing.push(model.clone()),
        }
    }
    let (action, confidence) = combine(profile.method, &votes, profile.min_confidence);
    let exits = match action {
        Action::Long => most_confident[0],
        Action::Short => most_confident[1],
        Action::Hold => None,
    };
    let reasoning = reasoning(profile, votes.len(), &contributions, &missing);
    Decision {
        candle_id: candle_id.to_string(),
        symbol: join.symbol.clone(),
        interval: join.interval,
        open_time: join.open_time,
        open: join.open,
        high: join.high,
        low: join.low,
        close: join.close,
        profile: profile.name.clone(),
        action,
        confidence,
        contributions,
        missing,
        trigger,
        reasoning,
        stop_loss: exits.and_then(|a| a.stop_loss),
        take_profit: exits.and_then(|a| a.take_profit),
    }
}

/// Each of a profile's models (name order) with its weight and its answer if one arrived: one
/// merge of the two sorted maps. Why: a lookup per model compared model names a dozen times
/// per decision.
fn joined<'a>(
    models: &'a BTreeMap<String, f64>,
    answers: &'a SmallMap<Answer>,
) -> impl Iterator<Item = (&'a String, f64, Option<&'a Answer>)> {
    let mut answers = answers.iter().peekable();
    models.iter().map(move |(model, weight)| {
        while answers.next_if(|(m, _)| m.as_str() < model.as_str()).is_some() {}
        let answer = answers.next_if(|(m, _)| *m == model).map(|(_, a)| a);
        (model, *weight, answer)
    })
}

/// `WeightedVote over 5/5 models (rsi hold 0.00, macd long 0.42, ...); missing: x, y`.
/// Written into one string with the numbers through `numfmt` (the same text as `format!`'s):
/// formatting it was the largest part of deciding.
fn reasoning(profile: &Profile, votes: usize, contributions: &[Contribution], missing: &[String]) -> String {
    let mut s = String::with_capacity(48 + 24 * contributions.len() + 16 * missing.len());
    s.push_str(profile.method.variant_name());
    s.push_str(" over ");
    numfmt::push_u64(&mut s, votes as u64);
    s.push('/');
    numfmt::push_u64(&mut s, profile.models.len() as u64);
    s.push_str(" models (");
    for (i, c) in contributions.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&c.model);
        s.push(' ');
        s.push_str(c.action.as_str());
        s.push(' ');
        numfmt::push_fixed(&mut s, c.confidence, 2);
    }
    s.push(')');
    if !missing.is_empty() {
        s.push_str("; missing: ");
        s.push_str(&missing.join(", "));
    }
    s
}
