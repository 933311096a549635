//! One fleet member for the cross-process tests: consumes `test.events` into the sink until
//! SIGTERM/SIGINT, then shuts down gracefully and exits 0.
//!
//! fleet_member <redis-url> <member-name> <partitions> [--slow-ms N] [--stateful] [--fail-key K]
//!              [--sink URL] [--wait-replicas N]
//!
//! The sink lives in the bus's Redis unless `--sink` names another server (a cluster's bus keeps
//! it apart: the sink's script spans keys of several slots).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tradeflow_bus::connection::Replication;
use tradeflow_bus::{Bus, Consumer};
use tradeflow_tests::{Behaviour, GROUP, STREAM, Sink, SinkFactory};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("info").init();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: fleet_member <redis-url> <member-name> <partitions> [--slow-ms N] [--stateful] [--fail-key K]");
    }
    let (url, name) = (args[1].clone(), args[2].clone());
    let partitions: u32 = args[3].parse().context("partitions")?;
    let mut behaviour = Behaviour { member: name.clone(), ..Default::default() };
    let mut sink_url = url.clone();
    let mut wait_replicas = 0;
    let mut rest = args[4..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--slow-ms" => behaviour.slow = Duration::from_millis(rest.next().context("--slow-ms N")?.parse()?),
            "--stateful" => behaviour.stateful = true,
            "--fail-key" => behaviour.fail_key = Some(rest.next().context("--fail-key K")?.clone()),
            "--sink" => sink_url = rest.next().context("--sink URL")?.clone(),
            "--wait-replicas" => wait_replicas = rest.next().context("--wait-replicas N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let bus = Bus::connect(&url, tradeflow_testkit::test_topology(partitions, 5))
        .await?
        .with_replication(Replication { wait_replicas, wait_timeout_ms: 1000 });
    bus.init().await?;
    let sink = Sink::connect(&sink_url).await?;
    let factory = SinkFactory { sink, behaviour: Arc::new(behaviour) };
    let consumer = Consumer::new(bus, STREAM, GROUP, "fleet-test", factory)?.with_member_name(name);

    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        trigger.cancel();
    });
    consumer.run(shutdown).await?;
    Ok(())
}
