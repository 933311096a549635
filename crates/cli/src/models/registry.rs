//! The registry commands: list, show, deploy (through the gate, or forced and audited) and
//! roll back. Every deploy, refusal and rollback is an `audit_log` row (the edge's audit
//! record shape: actor, action, resource, status, details).

use anyhow::{Context, bail};
use tradeflow_audit::query::models::ModelVersionRow;
use tradeflow_audit::{AuditLogRow, AuditStore, Row};
use tradeflow_models::gate::{GateFigures, GateVerdict};

use super::{DeployArgs, StoreArgs};

async fn connect(store: &StoreArgs) -> anyhow::Result<AuditStore> {
    AuditStore::connect(&store.database_url).await.context("opening the model registry")
}

pub async fn list(store: &StoreArgs, name: Option<&str>) -> anyhow::Result<()> {
    let s = connect(store).await?;
    let rows = s.model_versions(name).await?;
    s.close().await;
    println!(
        "{:<20} {:>7} {:<9} {:<9} {:>9} {:>6} {:<12}",
        "name", "version", "family", "state", "test acc", "forced", "created by"
    );
    for r in rows {
        println!(
            "{:<20} {:>7} {:<9} {:<9} {:>9} {:>6} {:<12}",
            r.name,
            r.version,
            r.family,
            r.state,
            r.test_accuracy.map_or("null".into(), |a| format!("{a:.4}")),
            if r.forced { "yes" } else { "" },
            r.created_by
        );
    }
    Ok(())
}

pub async fn show(store: &StoreArgs, name: &str, version: Option<i64>) -> anyhow::Result<()> {
    let s = connect(store).await?;
    let version = match version {
        Some(v) => v,
        None => {
            s.deployed_of(name).await?.with_context(|| format!("model {name:?} has no deployed version; name one"))?
        }
    };
    let row =
        s.model_version(name, version).await?.with_context(|| format!("no version {version} of model {name:?}"))?;
    s.close().await;
    println!("{}", serde_json::to_string_pretty(&record(&row)?)?);
    Ok(())
}

/// A version as JSON: its columns, with `parameters` and `metrics` parsed.
pub(crate) fn record(row: &ModelVersionRow) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(row)?;
    v["parameters"] = serde_json::from_str(&row.parameters).context("parameters column")?;
    v["metrics"] = serde_json::from_str(&row.metrics).context("metrics column")?;
    Ok(v)
}

/// The gate of a stored version, judged on its stored figures.
pub(crate) fn judge(row: &ModelVersionRow) -> anyhow::Result<(GateVerdict, GateFigures)> {
    tradeflow_models::gate::judge_stored(&row.parameters, &row.metrics)
        .map_err(|e| anyhow::anyhow!("{}/{}: {e}", row.name, row.version))
}

/// Writes one audit_log row (as the edge's audit records are stored).
pub(crate) async fn audit(
    store: &AuditStore,
    actor: &str,
    action: &str,
    resource: &str,
    status: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let now = tradeflow_core::time::now_ms();
    let row = Row::Audit(AuditLogRow {
        id: format!("audit:{now}:{action}:{resource}"),
        actor: actor.to_string(),
        action: action.to_string(),
        resource: resource.to_string(),
        ip: None,
        status: status.to_string(),
        details: details.to_string(),
        time: now,
    });
    store.write([&row]).await.context("writing the audit record")?;
    Ok(())
}

/// What a deploy did.
#[derive(Debug)]
pub(crate) struct Deployed {
    pub previous: Option<i64>,
    pub forced: bool,
    pub verdict: GateVerdict,
}

/// Deploys `version` of `name` through its gate (or `force`d), auditing the outcome.
pub(crate) async fn deploy_version(
    s: &AuditStore,
    name: &str,
    version: i64,
    force: bool,
    reason: Option<&str>,
    actor: &str,
) -> anyhow::Result<Deployed> {
    let row =
        s.model_version(name, version).await?.with_context(|| format!("no version {version} of model {name:?}"))?;
    let (verdict, figures) = judge(&row)?;
    let resource = format!("model_versions/{name}/{version}");
    let details = serde_json::json!({
        "name": name, "version": version, "gate": verdict, "figures": figures, "forced": force && !verdict.passed,
        "reason": reason,
    });
    if !verdict.passed && !force {
        audit(s, actor, "model_deploy", &resource, "refused", details).await?;
        bail!(
            "deploy of {name} v{version} refused by the gate: {}. --force deploys it anyway (audited)",
            verdict.refusals()
        );
    }
    let forced = !verdict.passed;
    let d = s
        .deploy_model(name, version, actor, forced, tradeflow_core::time::now_ms())
        .await?
        .with_context(|| format!("no version {version} of model {name:?}"))?;
    let action = if forced { "model_deploy_forced" } else { "model_deploy" };
    audit(s, actor, action, &resource, "ok", details).await?;
    Ok(Deployed { previous: d.previous, forced, verdict })
}

pub async fn deploy(args: &DeployArgs) -> anyhow::Result<()> {
    let s = connect(&args.store).await?;
    let out = deploy_version(&s, &args.name, args.version, args.force, args.reason.as_deref(), &args.actor).await;
    s.close().await;
    let d = out?;
    println!(
        "{} v{} deployed{}{}; gate {}",
        args.name,
        args.version,
        if d.forced { " (forced past the gate, audited)" } else { "" },
        d.previous.map_or(String::new(), |p| format!(", v{p} retired")),
        d.verdict
    );
    Ok(())
}

pub async fn rollback(store: &StoreArgs, name: &str, actor: &str) -> anyhow::Result<()> {
    let s = connect(store).await?;
    let out = async {
        let current = s.deployed_of(name).await?;
        let target = s
            .rollback_target(name)
            .await?
            .with_context(|| format!("model {name:?} has no version deployed before the current one"))?;
        s.deploy_model(name, target, actor, false, tradeflow_core::time::now_ms()).await?;
        let details = serde_json::json!({ "name": name, "from": current, "to": target });
        audit(&s, actor, "model_rollback", &format!("model_versions/{name}/{target}"), "ok", details).await?;
        anyhow::Ok((current, target))
    }
    .await;
    s.close().await;
    let (current, target) = out?;
    println!("{name}: rolled back to v{target}{}", current.map_or(String::new(), |c| format!(" (v{c} retired)")));
    Ok(())
}
