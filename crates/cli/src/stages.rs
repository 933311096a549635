//! The downstream stages as consumers: risk, execution and audit, plus what they share
//! (accounts, the control-state follower). Used by `tradeflow worker <stage>`, `tradeflow up`
//! and the pipeline benchmark, so each stage is wired in one place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use prometheus::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tradeflow_audit::AuditStore;
use tradeflow_audit::worker::{AuditFactory, AuditMetrics, GROUP};
use tradeflow_bus::{Bus, BusMetrics, Consumer, Producer};
use tradeflow_core::control::ControlState;
use tradeflow_ensemble::Profile;
use tradeflow_exec::binance::{FuturesClient, FuturesConfig};
use tradeflow_exec::exchange::ExchangeAccount;
use tradeflow_exec::hyperliquid::HyperliquidClient;
use tradeflow_exec::stage::ExecAccount;
use tradeflow_exec::worker::{ExecFactory, ExecMetrics};
use tradeflow_risk::worker::{RiskFactory, RiskMetrics};
use tradeflow_risk::{AccountConfig, ExecutorKind, parse_accounts};

/// Starting balance of the default accounts.
pub use tradeflow_risk::DEFAULT_BALANCE;

/// Accounts from `path`, or one paper account per profile (`paper-<profile>`, 10,000 quote);
/// every problem reported at once.
pub fn load_accounts(path: Option<&Path>, profiles: &[Profile]) -> anyhow::Result<Vec<AccountConfig>> {
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let Some(path) = path else {
        return Ok(profiles
            .iter()
            .map(|p| AccountConfig::paper(&format!("paper-{}", p.name), &p.name, DEFAULT_BALANCE))
            .collect());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_accounts(&text, &names)
        .map_err(|problems| anyhow::anyhow!("{}:\n  {}", path.display(), problems.join("\n  ")))
}

/// Follows `ctl.commands` into a watch channel until `stop`.
pub fn follow_control(bus: &Bus, stop: CancellationToken) -> watch::Receiver<ControlState> {
    let (tx, rx) = watch::channel(ControlState::default());
    tokio::spawn(tradeflow_bus::control::follow(bus.clone(), tx, stop));
    rx
}

fn named<F: tradeflow_bus::HandlerFactory>(mut c: Consumer<F>, member: Option<String>) -> Consumer<F> {
    if let Some(name) = member {
        c = c.with_member_name(name);
    }
    c
}

/// Consumer of ens.decisions (group `risk`).
pub fn risk_consumer(
    bus: &Bus,
    metrics: RiskMetrics,
    bus_metrics: &BusMetrics,
    accounts: &[AccountConfig],
    control: watch::Receiver<ControlState>,
    member: Option<String>,
) -> anyhow::Result<Consumer<RiskFactory>> {
    eprintln!(
        "risk: accounts {}",
        accounts
            .iter()
            .map(|a| format!("{} ({}, {})", a.id, a.profile, a.executor.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let partitions = bus.topology().stream("ens.decisions")?.partitions;
    let factory = RiskFactory {
        accounts: Arc::new(accounts.to_vec()),
        partitions,
        producer: Producer::new(bus.clone(), "risk").with_metrics(bus_metrics.clone()),
        metrics,
        control,
    };
    let c = Consumer::new(bus.clone(), "ens.decisions", "risk", "risk", factory)?.with_metrics(bus_metrics.clone());
    Ok(named(c, member))
}

/// Consumer of risk.orders (group `exec`): the paper broker, Binance USDⓈ-M futures for
/// accounts with executor `binance_futures`, Hyperliquid perpetuals for `hyperliquid_perp`.
/// How often the executor reads an exchange account's figures for risk (`reconcile_every_s`;
/// 0: only after fills).
fn reconcile_every(a: &AccountConfig) -> Option<std::time::Duration> {
    (a.risk.reconcile_every_s > 0).then(|| std::time::Duration::from_secs(a.risk.reconcile_every_s))
}

pub fn exec_consumer(
    bus: &Bus,
    metrics: ExecMetrics,
    bus_metrics: &BusMetrics,
    accounts: &[AccountConfig],
    member: Option<String>,
) -> anyhow::Result<Consumer<ExecFactory>> {
    let mut exchange = Vec::new();
    for a in accounts.iter().filter(|a| a.executor == ExecutorKind::BinanceFutures) {
        let b = a.binance.as_ref().with_context(|| format!("account {}: no [binance] table", a.id))?;
        let config = FuturesConfig {
            base_url: b.base_url.clone(),
            testnet: b.testnet,
            api_key_env: b.api_key_env.clone(),
            secret_env: b.secret_env.clone(),
            ..FuturesConfig::default()
        };
        let client = FuturesClient::new(&config).with_context(|| format!("account {}", a.id))?;
        exchange.push(ExchangeAccount {
            id: a.id.clone(),
            profile: a.profile.clone(),
            starting_balance: a.starting_balance,
            leverage: a.leverage as u32,
            taker_fee: a.paper.taker_fee,
            client: client.into(),
            reconcile_every: reconcile_every(a),
        });
    }
    for a in accounts.iter().filter(|a| a.executor == ExecutorKind::HyperliquidPerp) {
        let h = a.hyperliquid.as_ref().with_context(|| format!("account {}: no [hyperliquid] table", a.id))?;
        let client = HyperliquidClient::new(&h.client_config()).with_context(|| format!("account {}", a.id))?;
        exchange.push(ExchangeAccount {
            id: a.id.clone(),
            profile: a.profile.clone(),
            starting_balance: a.starting_balance,
            leverage: a.leverage as u32,
            taker_fee: a.paper.taker_fee,
            client: client.into(),
            reconcile_every: reconcile_every(a),
        });
    }
    let accounts = accounts
        .iter()
        .filter(|a| a.executor == ExecutorKind::Paper)
        .map(|a| ExecAccount { id: a.id.clone(), starting_balance: a.starting_balance, paper: a.paper.clone() })
        .collect();
    let factory = ExecFactory {
        accounts,
        exchange,
        producer: Producer::new(bus.clone(), "exec").with_metrics(bus_metrics.clone()),
        metrics,
    };
    let c = Consumer::new(bus.clone(), "risk.orders", "exec", "exec", factory)?.with_metrics(bus_metrics.clone());
    Ok(named(c, member))
}

/// The audit store at `url` (migrated).
pub async fn audit_store(url: &str) -> anyhow::Result<Arc<AuditStore>> {
    Ok(Arc::new(AuditStore::connect(url).await?))
}

/// Runs one audit consumer per audited stream until `stop`; returns when all have stopped.
pub async fn run_audit(
    bus: &Bus,
    registry: &Registry,
    bus_metrics: &BusMetrics,
    store: Arc<AuditStore>,
    member: Option<String>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = AuditMetrics::register(registry)?;
    let mut tasks = Vec::new();
    // Every stream streams.toml gives the audit group (a stream added there is audited).
    for stream in bus.topology().streams_read_by(GROUP) {
        let factory = AuditFactory { store: store.clone(), metrics: metrics.clone() };
        let c = Consumer::new(bus.clone(), stream, GROUP, "audit", factory)?.with_metrics(bus_metrics.clone());
        let c = named(c, member.as_ref().map(|m| format!("{m}:{stream}")));
        tasks.push(tokio::spawn(c.run(stop.clone())));
    }
    for t in tasks {
        t.await.context("audit task")??;
    }
    Ok(())
}

/// What the in-process pipeline runs downstream of ingestion.
pub struct PipelineSpec<'a> {
    pub models: &'a [String],
    pub llm_config: Option<&'a Path>,
    pub profiles: Vec<Profile>,
    pub accounts: Vec<AccountConfig>,
    pub store: Arc<AuditStore>,
    /// `Some((profiles file, accounts file))`: ensemble, risk and execution re-read these
    /// files on `reload` (as their workers do); `None`: they run with the given ones.
    pub reload_from: Option<(Option<PathBuf>, Option<PathBuf>)>,
}

/// Inference, ensemble, risk, execution and audit as tasks of this process, until `stop`.
pub fn spawn_pipeline(
    bus: &Bus,
    registry: &Registry,
    bus_metrics: &BusMetrics,
    spec: PipelineSpec<'_>,
    control: watch::Receiver<ControlState>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    fn task<F: tradeflow_bus::HandlerFactory>(
        c: Consumer<F>,
        stop: &CancellationToken,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let stop = stop.clone();
        tokio::spawn(async move { c.run(stop).await.map_err(anyhow::Error::from) })
    }
    let (inference, ml) = crate::worker::inference_consumer(
        bus,
        registry,
        bus_metrics,
        spec.models,
        spec.llm_config,
        Some(control.clone()),
        None,
    )?;
    // Learned models: their deployed versions from the registry (this store), followed.
    let followed = if ml.is_empty() { None } else { Some((ml, spec.store.clone(), control.clone(), stop.clone())) };
    let ensemble_metrics = tradeflow_ensemble::worker::EnsembleMetrics::register(registry)?;
    let risk_metrics = RiskMetrics::register(registry)?;
    let exec_metrics = ExecMetrics::register(registry)?;
    let inference_task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            // The deployed versions are installed before the first candle is read.
            let follower = match followed {
                Some((ml, store, control, stop)) => {
                    crate::worker::follow_models(&ml, Some(store), Some(control), stop).await?
                }
                None => None,
            };
            let out = inference.run(stop).await.map_err(anyhow::Error::from);
            if let Some(f) = follower {
                f.abort();
            }
            out
        })
    };
    let mut tasks = vec![inference_task];
    match spec.reload_from {
        None => {
            let ensemble = crate::worker::ensemble_consumer(bus, ensemble_metrics, bus_metrics, spec.profiles, None)?;
            let risk = risk_consumer(bus, risk_metrics, bus_metrics, &spec.accounts, control, None)?;
            let exec = exec_consumer(bus, exec_metrics, bus_metrics, &spec.accounts, None)?;
            tasks.extend([task(ensemble, stop), task(risk, stop), task(exec, stop)]);
        }
        Some((profiles_path, accounts_path)) => {
            // Each stage re-reads the files itself on `reload`, like its worker process.
            let load = move || -> anyhow::Result<(Vec<Profile>, Vec<AccountConfig>)> {
                let profiles = crate::worker::load_profiles(profiles_path.as_deref())?;
                let accounts = load_accounts(accounts_path.as_deref(), &profiles)?;
                Ok((profiles, accounts))
            };
            let (b, m, bm, l) = (bus.clone(), ensemble_metrics, bus_metrics.clone(), load.clone());
            let build = move || crate::worker::ensemble_consumer(&b, m.clone(), &bm, l()?.0, None);
            let (c, st) = (control.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { run_reloadable("ensemble", build, c, st).await }));
            let (b, m, bm, l, ctl) = (bus.clone(), risk_metrics, bus_metrics.clone(), load.clone(), control.clone());
            let build = move || risk_consumer(&b, m.clone(), &bm, &l()?.1, ctl.clone(), None);
            let (c, st) = (control.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { run_reloadable("risk", build, c, st).await }));
            let (b, m, bm, l) = (bus.clone(), exec_metrics, bus_metrics.clone(), load);
            let build = move || exec_consumer(&b, m.clone(), &bm, &l()?.1, None);
            let (c, st) = (control, stop.clone());
            tasks.push(tokio::spawn(async move { run_reloadable("exec", build, c, st).await }));
        }
    }
    let (bus, registry, bus_metrics, store, stop) =
        (bus.clone(), registry.clone(), bus_metrics.clone(), spec.store, stop.clone());
    let audit =
        run_audit_below_the_stages(async move { run_audit(&bus, &registry, &bus_metrics, store, None, stop).await })?;
    tasks.push(tokio::spawn(audit));
    Ok(tasks)
}

/// Runs `audit` on a runtime of its own whose threads run at nice [`tradeflow_audit::AUDIT_NICE`],
/// like the store's SQLite threads: the writer catches up from Redis whenever a core is free,
/// but a stage that wakes never waits for it. (On the stages' runtime, decoding and mapping the
/// messages it writes took a core from the trading path at full load: 13,000-20,000 candles/s
/// on the trading path instead of 28,000-34,000, 300,000 candles, 2026-12-04.) Returns a future
/// that ends with `audit`.
fn run_audit_below_the_stages(
    audit: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tf-audit")
        .on_thread_start(tradeflow_audit::lower_current_thread)
        .enable_all()
        .build()
        .context("start the audit writer's runtime")?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tf-audit-main".into())
        .spawn(move || {
            tradeflow_audit::lower_current_thread();
            let _ = done.send(runtime.block_on(audit));
        })
        .context("start the audit writer's thread")?;
    Ok(async move { finished.await.context("the audit writer's thread ended without a result")? })
}

pub use tradeflow_bus::inspect::{drained, pipeline_groups};

/// Whether every stage and the audit writer have nothing left.
pub async fn all_drained(bus: &Bus) -> anyhow::Result<bool> {
    for (stream, group) in pipeline_groups(bus.topology()) {
        if !drained(bus, &stream, &group).await? {
            return Ok(false);
        }
    }
    for stream in bus.topology().streams_read_by(GROUP) {
        if !drained(bus, stream, GROUP).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs the consumer `build` makes until `stop`. On each new `reload` command (`tradeflow ctl
/// reload`) `build` runs again, re-reading the configuration files: if they are sound, the
/// running consumer stops gracefully (acknowledges, checkpoints, releases its leases) and the
/// new one takes over from the checkpoints; if not, every problem is logged and the running
/// configuration stays.
pub async fn run_reloadable<F: tradeflow_bus::HandlerFactory>(
    stage: &str,
    mut build: impl FnMut() -> anyhow::Result<Consumer<F>>,
    mut control: watch::Receiver<ControlState>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut seen = control.borrow_and_update().last_reload.clone();
    let mut generation = stop.child_token();
    let mut task = tokio::spawn(build()?.run(generation.clone()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            ended = &mut task => return Ok(ended.context("consumer task")??),
            changed = control.changed() => {
                if changed.is_err() {
                    stop.cancelled().await;
                    break;
                }
                let now = control.borrow_and_update().last_reload.clone();
                if now == seen {
                    continue;
                }
                seen = now;
                match build() {
                    Ok(next) => {
                        generation.cancel();
                        task.await.context("consumer task")??;
                        generation = stop.child_token();
                        task = tokio::spawn(next.run(generation.clone()));
                        eprintln!("{stage}: configuration reloaded");
                    }
                    Err(e) => {
                        eprintln!("{stage}: reload refused, the running configuration stays: {e:#}");
                        tracing::error!(error = %format!("{e:#}"), "reload refused");
                    }
                }
            }
        }
    }
    task.await.context("consumer task")??;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::{Arc, Mutex};

    /// Nice value of the calling thread (field 19 of /proc/thread-self/stat).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
        let after = &stat[stat.rfind(')').expect("stat has a command") + 2..];
        after.split(' ').nth(16).expect("nice field").parse().expect("numeric nice")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_audit_runs_below_the_stages() {
        let base = own_nice();
        if base >= tradeflow_audit::AUDIT_NICE {
            return; // run under nice already: nothing to lower
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inside = seen.clone();
        super::run_audit_below_the_stages(async move {
            inside.lock().unwrap().push(own_nice());
            let spawned = tokio::spawn(async { own_nice() }).await?;
            inside.lock().unwrap().push(spawned);
            Ok(())
        })
        .expect("start")
        .await
        .expect("audit future");
        assert_eq!(*seen.lock().unwrap(), [tradeflow_audit::AUDIT_NICE; 2], "nice of the audit's threads");
        assert_eq!(own_nice(), base, "the stages' runtime keeps its priority");
    }
}
