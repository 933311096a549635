//! `tradeflow up`: tradeflow on one machine. With no REDIS_URL it starts a private
//! redis-server child (free loopback port, AOF on, data under --data-dir) and stops it on exit.
//!
//! The pipeline stages (ingest, inference, ensemble, risk, execution, audit) join this
//! command as they are built; today it brings up the bus: every stream and consumer group of
//! streams.toml, and their health.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tradeflow_bus::embedded::{EmbeddedOptions, RedisServer};
use tradeflow_bus::{Bus, inspect};

use crate::config::Settings;

#[derive(Args)]
pub struct UpArgs {
    /// Where the embedded Redis keeps its data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Set up, print the stream health and exit (for scripts and first runs).
    #[arg(long)]
    once: bool,
}

pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<()> {
    let mut embedded = None;
    let url = match &settings.redis_url {
        Some(url) => url.clone(),
        None => {
            let dir = args.data_dir.join("redis");
            let server = RedisServer::start(EmbeddedOptions { dir: dir.clone(), port: None, appendonly: true })
                .await
                .context("cannot start the embedded redis-server")?;
            println!("embedded redis-server on {} (data in {})", server.url(), dir.display());
            let url = server.url();
            embedded = Some(server);
            url
        }
    };
    let result = serve(settings, &url, args.once).await;
    if let Some(mut server) = embedded {
        server.stop().await;
    }
    result
}

async fn serve(settings: &Settings, url: &str, once: bool) -> anyhow::Result<()> {
    let bus = Bus::connect(url, settings.topology.clone()).await.with_context(|| format!("cannot connect to {url}"))?;
    let created = bus.init().await?;
    println!(
        "topology {} (namespace {:?}): {} streams, {created} consumer groups created",
        settings.topology_source,
        bus.topology().namespace,
        bus.topology().streams.len()
    );
    print_health(&bus).await?;
    if once {
        return Ok(());
    }
    println!("running; REDIS_URL={url} for other tradeflow commands. Ctrl-C or SIGTERM stops.");
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("stopping");
    Ok(())
}

async fn print_health(bus: &Bus) -> anyhow::Result<()> {
    println!("{:<14} {:>5} {:>9} {:>8} {:>6}  groups", "stream", "parts", "length", "pending", "dlq");
    for s in inspect::health(bus).await? {
        let groups = s.partitions.first().map(|p| p.groups.iter().map(|g| g.group.clone()).collect::<Vec<_>>());
        println!(
            "{:<14} {:>5} {:>9} {:>8} {:>6}  {}",
            s.stream,
            s.partitions.len(),
            s.length,
            s.pending,
            s.dlq_length,
            groups.unwrap_or_default().join(",")
        );
    }
    Ok(())
}
