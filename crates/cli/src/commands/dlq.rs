//! `tradeflow dlq list|stats|replay|purge`.

use anyhow::bail;
use clap::{ArgGroup, Subcommand};
use tradeflow_bus::dlq::{Dlq, ReplaySelector};

use super::print_json;
use crate::config::Settings;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters of a stream, oldest first, payloads decoded to JSON.
    List {
        /// Logical stream name from streams.toml (e.g. inf.signals).
        stream: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Counts by reason and partition.
    Stats {
        stream: String,
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their stream (and remove them from the DLQ).
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all", "reason"])))]
    Replay {
        stream: String,
        /// One dead letter: <partition>/<entry id> as `dlq list` shows it.
        #[arg(long)]
        id: Option<String>,
        /// Every dead letter of the stream.
        #[arg(long)]
        all: bool,
        /// Those with this dead_letter_reason (decode_error, max_deliveries, rejected).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete every dead letter of a stream.
    Purge { stream: String },
}

pub async fn run(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<()> {
    let bus = crate::connect(settings).await?;
    let dlq = Dlq::new(&bus);
    match cmd {
        DlqCommand::List { stream, limit, json } => {
            let letters = dlq.list(&stream, limit).await?;
            if json {
                return print_json(&letters);
            }
            if letters.is_empty() {
                println!("no dead letters in {stream}");
            }
            for d in letters {
                println!(
                    "{:<24} {:<15} tries={} msg={} group={} service={}\n    error: {}\n    payload: {}",
                    d.id,
                    d.dead_letter_reason,
                    d.final_retry_count,
                    if d.message_id.is_empty() { "?" } else { &d.message_id },
                    d.group,
                    d.service_name,
                    d.error,
                    d.payload.map(|p| p.to_string()).unwrap_or_else(|| "(none)".into())
                );
            }
        }
        DlqCommand::Stats { stream, json } => {
            let stats = dlq.stats(&stream).await?;
            if json {
                return print_json(&stats);
            }
            println!("{stream}: {} dead letter(s)", stats.total);
            for (reason, n) in &stats.by_reason {
                println!("  {reason:<16} {n}");
            }
        }
        DlqCommand::Replay { stream, id, all, reason } => {
            let selector = match (id, all, reason) {
                (Some(id), false, None) => ReplaySelector::Id(id),
                (None, true, None) => ReplaySelector::All,
                (None, false, Some(r)) => ReplaySelector::Reason(r),
                _ => bail!("give exactly one of --id, --all, --reason"),
            };
            let report = dlq.replay(&stream, &selector).await?;
            println!("replayed {} dead letter(s) onto {stream}", report.replayed.len());
            for (id, why) in &report.skipped {
                println!("  skipped {id}: {why}");
            }
        }
        DlqCommand::Purge { stream } => {
            let n = dlq.purge(&stream).await?;
            println!("purged {n} dead letter(s) from {stream}");
        }
    }
    Ok(())
}
