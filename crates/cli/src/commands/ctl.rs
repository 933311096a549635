//! `tradeflow ctl ...`: operator commands on ctl.commands. Every worker follows the stream and
//! obeys; the audit worker writes each command to `audit_log`.

use clap::Subcommand;
use tradeflow_bus::Producer;
use tradeflow_bus::control::send_command;
use tradeflow_core::control::{Command, ControlCommand};
use tradeflow_core::time::now_ms;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum CtlCommand {
    /// No new decisions and no new entries until resumed.
    Pause,
    Resume,
    /// Analyse now (one symbol, or every one the inference workers hold): an analysis cycle
    /// whose signals the profiles decide on like a candle's own.
    Trigger {
        symbol: Option<String>,
        /// Profiles the cycle is for, comma-separated (default: every profile).
        #[arg(long, value_delimiter = ',', value_name = "PROFILE")]
        profiles: Vec<String>,
    },
    /// Halt every account (no new entries).
    EmergencyStop {
        /// Also close every open position at the latest price.
        #[arg(long)]
        close_positions: bool,
    },
    /// Lift the emergency stop.
    ClearEmergency,
    /// Reset an account's circuit breaker and loss streak.
    Reset {
        account: String,
    },
    /// Enable or disable trading for an account.
    Trading {
        account: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Re-read the configuration files.
    Reload,
}

pub async fn run(settings: &Settings, cmd: CtlCommand) -> anyhow::Result<()> {
    let command = match cmd {
        CtlCommand::Pause => Command::Pause,
        CtlCommand::Resume => Command::Resume,
        CtlCommand::Trigger { symbol, profiles } => Command::Trigger { symbol, profiles },
        CtlCommand::EmergencyStop { close_positions } => Command::EmergencyStop { close_positions },
        CtlCommand::ClearEmergency => Command::ClearEmergency,
        CtlCommand::Reset { account } => Command::ResetAccount { account },
        CtlCommand::Trading { account, state } => Command::SetTrading { account, enabled: state == "on" },
        CtlCommand::Reload => Command::Reload,
    };
    let bus = crate::connect(settings).await?;
    bus.init().await?;
    let actor = std::env::var("USER").map(|u| format!("cli:{u}")).unwrap_or_else(|_| "cli".into());
    let c = ControlCommand::new(command, actor, None, now_ms());
    send_command(&Producer::new(bus, "cli"), &c).await?;
    println!("sent {} ({})", c.command.name(), c.id);
    Ok(())
}
