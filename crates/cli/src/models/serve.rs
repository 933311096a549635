//! The registry follower of a process that serves learned models: it installs each `ml:NAME`
//! model's deployed version at start, then looks again every [`POLL`] and at once on every
//! `reload` command, so a deploy or a rollback is served from the next candle with no restart.
//! A version whose file is refused (damaged, another feature schema) is logged with the reason
//! once and not tried again; the model keeps what it served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tradeflow_audit::AuditStore;
use tradeflow_core::control::ControlState;
use tradeflow_inference::ml::{MlModels, PREFIX};

/// How often the registry is read for deploys.
pub const POLL: Duration = Duration::from_secs(1);

/// What the follower last did per model, so that each change is logged once.
#[derive(Default)]
struct Seen {
    /// The deployed version last handled (installed or refused), `None`: none deployed.
    handled: BTreeMap<String, Option<i64>>,
}

/// Installs the deployed versions now; then follows the registry until `stop`.
pub async fn start(
    store: Arc<AuditStore>,
    models: Arc<MlModels>,
    control: Option<watch::Receiver<ControlState>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut seen = Seen::default();
    sync(&store, &models, &mut seen, false).await;
    tokio::spawn(async move {
        let mut control = control;
        let mut last_reload = control.as_mut().and_then(|c| c.borrow_and_update().last_reload.clone());
        loop {
            let reload = async {
                match control.as_mut() {
                    Some(c) => c.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(POLL) => sync(&store, &models, &mut seen, false).await,
                ok = reload => {
                    let now = control.as_mut().and_then(|c| c.borrow_and_update().last_reload.clone());
                    if !ok { control = None; }
                    if now != last_reload {
                        last_reload = now;
                        sync(&store, &models, &mut seen, true).await;
                    }
                }
            }
        }
    })
}

/// One look at the registry. `again`: a `reload`, which tries refused versions once more.
async fn sync(store: &AuditStore, models: &MlModels, seen: &mut Seen, again: bool) {
    let deployed = match store.deployed_models().await {
        Ok(d) => d.into_iter().collect::<BTreeMap<String, i64>>(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the model registry; the served versions stay");
            return;
        }
    };
    for name in models.names() {
        let want = deployed.get(&name).copied();
        if !again && seen.handled.get(&name) == Some(&want) {
            continue;
        }
        seen.handled.insert(name.clone(), want);
        let Some(version) = want else {
            models.clear(&name, &format!("no deployed version of {PREFIX}{name} in the registry"));
            eprintln!("inference: {PREFIX}{name}: no deployed version in the registry");
            continue;
        };
        if models.served_version(&name) == Some(version) && !again {
            continue;
        }
        let outcome = match store.model_file(&name, version).await {
            Ok(Some(bytes)) => models.install(&name, version, &bytes),
            Ok(None) => Err(format!("{PREFIX}{name} version {version} is not in the registry")),
            Err(e) => Err(format!("{PREFIX}{name} version {version}: {e}")),
        };
        match outcome {
            Ok(()) => eprintln!("inference: {PREFIX}{name} serves version {version}"),
            Err(reason) => {
                eprintln!("inference: {reason}");
                tracing::error!(model = %name, version, %reason, "learned model refused");
            }
        }
    }
}
