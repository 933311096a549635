//! `tradeflow streams init|list|health`.

use clap::Subcommand;
use serde::Serialize;
use tradeflow_bus::inspect;

use super::print_json;
use crate::config::Settings;

#[derive(Subcommand)]
pub enum StreamsCommand {
    /// Create every partition and consumer group (idempotent).
    Init,
    /// The topology: streams, partitions, groups, policies and Redis keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lengths, ids, groups, consumers, pending, lag and DLQ sizes from Redis.
    Health {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct StreamRow {
    name: String,
    description: String,
    key: String,
    partitions: u32,
    maxlen: u64,
    groups: Vec<String>,
    max_deliveries: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
    claim_idle_ms: u64,
    dlq_maxlen: u64,
    /// Entries every group has acknowledged are trimmed (streams.toml `trim_acked`).
    trim_acked: bool,
    redis_keys: Vec<String>,
    dlq_keys: Vec<String>,
}

pub async fn run(settings: &Settings, cmd: StreamsCommand) -> anyhow::Result<()> {
    match cmd {
        StreamsCommand::Init => {
            let bus = crate::connect(settings).await?;
            let created = bus.init().await?;
            let groups: usize = bus.topology().streams.values().map(|s| s.partitions as usize * s.groups.len()).sum();
            println!(
                "{} streams, {groups} partition groups: {created} created, {} already there (namespace {:?})",
                bus.topology().streams.len(),
                groups - created,
                bus.topology().namespace
            );
        }
        StreamsCommand::List { json } => {
            let keys = tradeflow_bus::keys::Keys::new(&settings.topology);
            let rows: Vec<StreamRow> = settings
                .topology
                .streams
                .values()
                .map(|s| StreamRow {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    key: s.key.clone(),
                    partitions: s.partitions,
                    maxlen: s.maxlen,
                    groups: s.groups.clone(),
                    max_deliveries: s.max_deliveries,
                    retry_backoff_ms: s.retry_backoff.as_millis() as u64,
                    retry_backoff_max_ms: s.retry_backoff_max.as_millis() as u64,
                    claim_idle_ms: s.claim_idle.as_millis() as u64,
                    dlq_maxlen: s.dlq_maxlen,
                    trim_acked: s.trim_acked,
                    redis_keys: keys.partitions(s),
                    dlq_keys: (0..s.partitions).map(|p| keys.dlq(&s.name, p)).collect(),
                })
                .collect();
            if json {
                return print_json(&rows);
            }
            println!("topology: {} (namespace {:?})", settings.topology_source, settings.topology.namespace);
            println!(
                "{:<14} {:>5} {:>9} {:>6} {:<5} {:<20} {:<10} description",
                "stream", "parts", "maxlen", "tries", "trim", "groups", "key"
            );
            for r in rows {
                println!(
                    "{:<14} {:>5} {:>9} {:>6} {:<5} {:<20} {:<10} {}",
                    r.name,
                    r.partitions,
                    r.maxlen,
                    r.max_deliveries,
                    // "acked": trimmed once every group acknowledged; "max": at maxlen only.
                    if r.trim_acked { "acked" } else { "max" },
                    r.groups.join(","),
                    r.key,
                    r.description
                );
            }
        }
        StreamsCommand::Health { json } => {
            let bus = crate::connect(settings).await?;
            let health = inspect::health(&bus).await?;
            if json {
                return print_json(&health);
            }
            println!(
                "{:<14} {:>9} {:>8} {:>8} {:>6}  groups (pending/lag, consumers)",
                "stream", "length", "pending", "lag", "dlq"
            );
            for s in &health {
                let mut groups: Vec<String> = Vec::new();
                for g in s.partitions.first().map(|p| p.groups.as_slice()).unwrap_or_default() {
                    let (pending, lag, consumers, missing) = s.partitions.iter().fold((0, 0, 0, 0), |acc, p| {
                        match p.groups.iter().find(|x| x.group == g.group) {
                            Some(x) if x.exists => {
                                (acc.0 + x.pending, acc.1 + x.lag.unwrap_or(0), acc.2 + x.consumers.len(), acc.3)
                            }
                            _ => (acc.0, acc.1, acc.2, acc.3 + 1),
                        }
                    });
                    let missing =
                        if missing > 0 { format!(" MISSING on {missing} partition(s)") } else { String::new() };
                    groups.push(format!("{} {pending}/{lag} c={consumers}{missing}", g.group));
                }
                println!(
                    "{:<14} {:>9} {:>8} {:>8} {:>6}  {}",
                    s.stream,
                    s.length,
                    s.pending,
                    s.lag,
                    s.dlq_length,
                    groups.join("; ")
                );
            }
        }
    }
    Ok(())
}
