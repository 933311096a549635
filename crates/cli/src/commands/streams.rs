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
            // The bus's rules, as the edge's /health/streams applies them.
            let assessed = inspect::assess_all(&bus).await?;
            if json {
                return print_json(&assessed);
            }
            println!(
                "{:<14} {:<9} {:>9} {:>8} {:>8} {:>6}  groups (pending/lag, live workers)",
                "stream", "status", "length", "pending", "lag", "dlq"
            );
            for a in &assessed {
                let groups: Vec<String> = a
                    .group_summaries
                    .iter()
                    .map(|g| {
                        let lag = if g.lag_known { g.lag.to_string() } else { format!("{}+", g.lag) };
                        let missing = if g.missing_on.is_empty() {
                            String::new()
                        } else {
                            format!(" MISSING on partitions {:?}", g.missing_on)
                        };
                        format!("{} {}/{lag} w={}{missing}", g.group, g.pending, g.live_workers.len())
                    })
                    .collect();
                let h = &a.health;
                println!(
                    "{:<14} {:<9} {:>9} {:>8} {:>8} {:>6}  {}",
                    h.stream,
                    a.status,
                    h.length,
                    h.pending,
                    h.lag,
                    h.dlq_length,
                    groups.join("; ")
                );
            }
            for i in assessed.iter().flat_map(|a| &a.issues) {
                println!("{} {}: {} ({})", i.severity, i.stream, i.message, i.code);
            }
        }
    }
    Ok(())
}
