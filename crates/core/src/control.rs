//! Operator commands on `ctl.commands`. Every worker folds the whole command stream into a
//! [`ControlState`], so a worker that starts late (or restarts) knows at once whether trading is
//! paused or stopped.

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::payload::Payload;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// No new decisions and no new orders until resumed (positions keep being marked).
    Pause,
    Resume,
    /// Analyse now (a symbol, or every tracked one): the inference workers run every model on
    /// the latest candle of each symbol they hold, and the ensemble decides on those signals
    /// like on a candle's own (an analysis cycle, see [`crate::signal::CycleTag`]).
    Trigger {
        symbol: Option<String>,
        /// Profiles the cycle is for (the scheduler's cycles: the LLM-driven ones); empty:
        /// every profile.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        profiles: Vec<String>,
    },
    /// Halt every account; with `close_positions`, close every open position at its symbol's latest close.
    EmergencyStop {
        close_positions: bool,
    },
    /// Lift an emergency stop (accounts halted by their circuit breaker stay halted).
    ClearEmergency,
    /// Reset an account's circuit breaker (and its loss streak).
    ResetAccount {
        account: String,
    },
    /// Enable or disable trading for an account.
    SetTrading {
        account: String,
        enabled: bool,
    },
    /// Re-read the configuration files.
    Reload,
    /// No new entries for one account until resumed (exits still happen).
    PauseAccount {
        account: String,
    },
    ResumeAccount {
        account: String,
    },
    /// Close every open position of one account at its latest price (entries held for the
    /// next open included), like an emergency stop's close, without halting anything.
    CloseAll {
        account: String,
    },
    /// Cancel a job (`tradeflow worker jobs`): a running one stops at its next check (within a
    /// second), a queued one never starts.
    CancelTask {
        task: String,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Trigger { .. } => "trigger",
            Self::EmergencyStop { .. } => "emergency_stop",
            Self::ClearEmergency => "clear_emergency",
            Self::ResetAccount { .. } => "reset_account",
            Self::SetTrading { .. } => "set_trading",
            Self::Reload => "reload",
            Self::PauseAccount { .. } => "pause_account",
            Self::ResumeAccount { .. } => "resume_account",
            Self::CloseAll { .. } => "close_all",
            Self::CancelTask { .. } => "cancel_task",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlCommand {
    /// Unique per command (`ctl:<issued_at>:<random>` from the CLI or the edge).
    pub id: String,
    pub command: Command,
    /// Who asked (user name, API key name, `cli`).
    pub actor: String,
    pub ip: Option<String>,
    pub issued_at: i64,
}

impl ControlCommand {
    pub fn new(command: Command, actor: impl Into<String>, ip: Option<String>, issued_at: i64) -> Self {
        let id = format!("ctl:{issued_at}:{:016x}", unique_suffix(issued_at));
        Self { id, command, actor: actor.into(), ip, issued_at }
    }

    /// The scheduler's trigger for the slot starting at `slot_ms`: every scheduler (one per
    /// inference worker) sends the same id for the same slot, so the cycle runs once however
    /// many of them run (the control state keeps a trigger id once).
    pub fn scheduled(profiles: Vec<String>, slot_ms: i64) -> Self {
        Self {
            id: format!("ctl:cycle:{slot_ms}"),
            command: Command::Trigger { symbol: None, profiles },
            actor: "scheduler".into(),
            ip: None,
            issued_at: slot_ms,
        }
    }

    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.id])
    }
}

/// 64 bits from the operating system's generator: ids from processes on different machines
/// (same process id, same millisecond) must not collide, and the answers of the edge hand them
/// out, so they are not guessable either. Should the generator fail, a per-process counter
/// mixed with the time and process id keeps them unique within the machine.
fn unique_suffix(issued_at: i64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    getrandom::u64().unwrap_or_else(|_| {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        (issued_at as u64 ^ (std::process::id() as u64) << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n
    })
}

impl Payload for ControlCommand {
    const KIND: &'static str = "control_command";
    const VERSION: u16 = 1;
}

/// Triggers the control state remembers (the newest); a worker acts on each of them once.
pub const TRIGGERS_KEPT: usize = 64;

/// Cancelled task ids the control state remembers (the newest).
pub const CANCELS_KEPT: usize = 1024;

/// A `trigger` command as the control state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSeen {
    pub id: String,
    pub symbol: Option<String>,
    pub profiles: Vec<String>,
    pub actor: String,
    pub issued_at: i64,
}

/// What the command stream says now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    pub paused: bool,
    /// Id of the emergency stop in force, if any.
    pub emergency: Option<String>,
    /// Whether that stop asked to close positions.
    pub close_positions: bool,
    /// Account → id of its latest reset command.
    pub resets: std::collections::BTreeMap<String, String>,
    /// Account → trading enabled, for accounts an operator switched.
    pub trading: std::collections::BTreeMap<String, bool>,
    /// Id of the latest trigger and reload, so a worker can act once on each.
    pub last_trigger: Option<(String, Option<String>)>,
    pub last_reload: Option<String>,
    /// Commands folded so far.
    pub applied: u64,
    /// The latest triggers, oldest first, at most [`TRIGGERS_KEPT`], each id once: a worker
    /// acts on every one it has not acted on (two in one read of the stream are both kept).
    #[serde(default)]
    pub triggers: std::collections::VecDeque<TriggerSeen>,
    /// Accounts an operator paused (no new entries).
    #[serde(default)]
    pub paused_accounts: std::collections::BTreeSet<String>,
    /// Account → id of its latest close-all command (risk acts once on each).
    #[serde(default)]
    pub close_all: std::collections::BTreeMap<String, String>,
    /// The latest cancels, oldest first, at most [`CANCELS_KEPT`]: task id and when the
    /// cancel was issued (it stops the submissions made before it, not a later retry). Older
    /// ones are in the job store as `cancelled` (the jobs workers write it when they see them).
    #[serde(default)]
    pub cancelled_tasks: std::collections::VecDeque<(String, i64)>,
}

impl ControlState {
    /// Whether a cancel issued at or after `submitted_at` names `task`.
    pub fn cancels(&self, task: &str, submitted_at: i64) -> bool {
        self.cancelled_tasks.iter().any(|(t, at)| t == task && *at >= submitted_at)
    }

    pub fn apply(&mut self, c: &ControlCommand) {
        match &c.command {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Trigger { symbol, profiles } => {
                if self.triggers.iter().any(|t| t.id == c.id) {
                    // The same scheduled slot sent by another scheduler: one cycle.
                    self.applied += 1;
                    return;
                }
                self.last_trigger = Some((c.id.clone(), symbol.clone()));
                self.triggers.push_back(TriggerSeen {
                    id: c.id.clone(),
                    symbol: symbol.clone(),
                    profiles: profiles.clone(),
                    actor: c.actor.clone(),
                    issued_at: c.issued_at,
                });
                while self.triggers.len() > TRIGGERS_KEPT {
                    self.triggers.pop_front();
                }
            }
            Command::EmergencyStop { close_positions } => {
                self.emergency = Some(c.id.clone());
                self.close_positions = *close_positions;
            }
            Command::ClearEmergency => {
                self.emergency = None;
                self.close_positions = false;
            }
            Command::ResetAccount { account } => {
                self.resets.insert(account.clone(), c.id.clone());
            }
            Command::SetTrading { account, enabled } => {
                self.trading.insert(account.clone(), *enabled);
            }
            Command::Reload => self.last_reload = Some(c.id.clone()),
            Command::PauseAccount { account } => {
                self.paused_accounts.insert(account.clone());
            }
            Command::ResumeAccount { account } => {
                self.paused_accounts.remove(account);
            }
            Command::CloseAll { account } => {
                self.close_all.insert(account.clone(), c.id.clone());
            }
            Command::CancelTask { task } => {
                self.cancelled_tasks.push_back((task.clone(), c.issued_at));
                while self.cancelled_tasks.len() > CANCELS_KEPT {
                    self.cancelled_tasks.pop_front();
                }
            }
        }
        self.applied += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_a_fold_of_the_commands() {
        let mut s = ControlState::default();
        let cmds = [
            Command::Pause,
            Command::EmergencyStop { close_positions: true },
            Command::Resume,
            Command::SetTrading { account: "a".into(), enabled: false },
        ];
        for (i, c) in cmds.into_iter().enumerate() {
            s.apply(&ControlCommand::new(c, "test", None, i as i64));
        }
        assert!(!s.paused);
        assert!(s.emergency.is_some() && s.close_positions);
        assert_eq!(s.trading.get("a"), Some(&false));
        assert_eq!(s.applied, 4);
        let a = ControlCommand::new(Command::Reload, "x", None, 1);
        let b = ControlCommand::new(Command::Reload, "x", None, 1);
        assert_ne!(a.id, b.id, "two commands in the same millisecond get different ids");
    }

    #[test]
    fn per_account_pause_and_close_all_fold() {
        let mut s = ControlState::default();
        for (i, c) in [
            Command::PauseAccount { account: "a".into() },
            Command::PauseAccount { account: "b".into() },
            Command::ResumeAccount { account: "a".into() },
            Command::CloseAll { account: "a".into() },
        ]
        .into_iter()
        .enumerate()
        {
            s.apply(&ControlCommand::new(c, "test", None, i as i64));
        }
        assert_eq!(s.paused_accounts.iter().collect::<Vec<_>>(), ["b"]);
        assert!(s.close_all.get("a").is_some_and(|id| id.starts_with("ctl:3:")));
        assert!(!s.paused, "an account's pause is not the global one");
    }

    #[test]
    fn triggers_are_kept_each_once_and_bounded() {
        let mut s = ControlState::default();
        let t = |symbol: &str, at| {
            ControlCommand::new(Command::Trigger { symbol: Some(symbol.into()), profiles: vec![] }, "t", None, at)
        };
        // Two in one read of the stream: both kept, in order.
        s.apply(&t("BTC", 1));
        s.apply(&t("ETH", 2));
        assert_eq!(s.triggers.iter().map(|t| t.symbol.as_deref()).collect::<Vec<_>>(), [Some("BTC"), Some("ETH")]);
        // The scheduler's slot, sent by two schedulers: one trigger.
        let slot = ControlCommand::scheduled(vec!["llm".into()], 600_000);
        s.apply(&slot);
        s.apply(&ControlCommand::scheduled(vec!["llm".into()], 600_000));
        assert_eq!(s.triggers.len(), 3);
        assert_eq!(s.triggers.back().map(|t| t.profiles.clone()), Some(vec!["llm".to_string()]));
        assert_eq!(s.applied, 4);
        for i in 0..2 * TRIGGERS_KEPT as i64 {
            s.apply(&t("BTC", 10 + i));
        }
        assert_eq!(s.triggers.len(), TRIGGERS_KEPT);
        assert_eq!(s.last_trigger.as_ref().map(|(id, _)| id), s.triggers.back().map(|t| &t.id));
    }

    #[test]
    fn a_trigger_without_profiles_reads_as_before() {
        let old = r#"{"command":"trigger","symbol":"BTC"}"#;
        let c: Command = serde_json::from_str(old).unwrap();
        assert_eq!(c, Command::Trigger { symbol: Some("BTC".into()), profiles: vec![] });
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
    }
}

/// Where an analysis cycle (a `trigger`) is for one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclePhase {
    /// The inference worker holding the symbol analysed its latest candle again; the cycle's
    /// signals follow it on `inf.signals`.
    Start,
    /// The ensemble decided on them for every profile the cycle is for.
    Complete,
}

impl CyclePhase {
    /// The edge's WebSocket event type.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Start => "cycle_start",
            Self::Complete => "cycle_complete",
        }
    }
}

/// One step of an analysis cycle for one symbol, on `audit.events`: stored as a system event,
/// sent by the edge to WebSocket clients as `cycle_start` / `cycle_complete` (the cycle's
/// decisions between them are `llm_decision` events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleEvent {
    /// Id of the `trigger` command.
    pub cycle: String,
    pub phase: CyclePhase,
    pub symbol: String,
    /// The cycle's candle id, `<candle id>/trigger:<cycle>` (its decisions are `<it>/<profile>`).
    pub candle_id: String,
    /// Start: the models that answered (rule models, then analysts).
    #[serde(default)]
    pub models: Vec<String>,
    /// Complete: the profiles that decided.
    #[serde(default)]
    pub decided: Vec<String>,
    /// Who asked for the cycle (start; empty when not known).
    #[serde(default)]
    pub actor: String,
    pub time: i64,
}

impl CycleEvent {
    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.candle_id]).child(self.phase.event_type())
    }
}

impl Payload for CycleEvent {
    const KIND: &'static str = "cycle_event";
    const VERSION: u16 = 1;
}

/// A record for the audit log: who did what to which resource, from where, with what outcome.
/// The edge sends one for every mutating call (and every refused one) on `audit.events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique (`audit:<time>:<request id>`).
    pub id: String,
    pub actor: String,
    /// e.g. `dlq_replay`, `account_create`, `login`.
    pub action: String,
    /// e.g. `/api/v1/streams/md.candles/dlq/replay`.
    pub resource: String,
    pub ip: Option<String>,
    /// `ok`, `refused`, `failed`.
    pub status: String,
    /// JSON text.
    pub details: String,
    pub time: i64,
}

impl AuditRecord {
    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.id])
    }
}

impl Payload for AuditRecord {
    const KIND: &'static str = "audit_record";
    const VERSION: u16 = 1;
}
