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
    /// Analyse now (a symbol, or every tracked one).
    Trigger {
        symbol: Option<String>,
    },
    /// Halt every account; with `close_positions`, close every open position at the next price.
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
}

impl ControlState {
    pub fn apply(&mut self, c: &ControlCommand) {
        match &c.command {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Trigger { symbol } => self.last_trigger = Some((c.id.clone(), symbol.clone())),
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
