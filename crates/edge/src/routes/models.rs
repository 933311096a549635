//! The model registry (learned models, `tradeflow models`): versions, deploy through the gate
//! (or forced, admin, audited), rollback. `GET /models` (the ai module) lists every model with
//! what the edge saw of it, the learned ones with their deployed version.
//!
//! - `GET /models/{name}/versions`: every version of a learned model (without its file).
//! - `GET /models/{name}/versions/{version}`: one, with its parameters, figures and gate verdict.
//! - `POST /models/{name}/deploy` (admin) `{version, force?, reason?}`: the version's gate is
//!   judged on its stored figures; refused: 409 naming each failed threshold with its figures
//!   (`force: true` deploys it anyway). The inference workers serving `ml:NAME` pick it up
//!   within a second.
//! - `POST /models/{name}/rollback` (admin): the version deployed before the current one.
//! - `GET /models/{name}/performance?days`: the live hit rate of `ml:NAME`'s long/short
//!   signals recorded in the last `days` (each judged by its candle's next stored bar, as
//!   `/ai/performance` does) beside the deployed version's test-window accuracy, and the
//!   users' ratings given in the window.
//! - `POST /models/{name}/feedback` (trader): [`super::model_feedback`].
//! - `POST /models/{name}/train|retrain` (trader): `train` jobs, [`super::model_jobs`].
//!
//! `tradeflow_model_live_hit_rate{model}` is kept here too ([`hit_rate`]).
//!
//! Every deploy, refused deploy and rollback is written to the audit log.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_audit::query::market::OutcomeStats;
use tradeflow_audit::query::models::ModelVersionRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Viewer};
use crate::error::{ApiError, Json, Path, Query, check_limit};
use crate::state::{AppState, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(deploy))
        .routes(routes!(rollback))
        .routes(routes!(performance))
        .routes(routes!(super::model_feedback::feedback))
        .routes(routes!(super::model_jobs::train))
        .routes(routes!(super::model_jobs::retrain))
}

/// A version of a learned model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    /// `logistic` or `gbt`.
    pub family: String,
    /// `trained`, `deployed` or `retired`.
    pub state: String,
    pub feature_schema: String,
    pub feature_hash: String,
    pub train_from: i64,
    pub train_to: i64,
    pub test_from: i64,
    pub test_to: i64,
    pub test_accuracy: Option<f64>,
    pub created_by: String,
    pub created_at: i64,
    pub deployed_at: Option<i64>,
    pub deployed_by: Option<String>,
    /// Deployed past a gate that refused it.
    pub forced: bool,
    pub size_bytes: i64,
    /// Learner, labels, split, seed, source and gate (only in `/versions/{version}`).
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// The training report, the trading evaluation and the gate's verdict (only in
    /// `/versions/{version}`).
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
}

fn of(r: ModelVersionRow, full: bool) -> ModelVersion {
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    ModelVersion {
        parameters: full.then(|| parse(&r.parameters)),
        metrics: full.then(|| parse(&r.metrics)),
        name: r.name,
        version: r.version,
        family: r.family,
        state: r.state,
        feature_schema: r.feature_schema,
        feature_hash: r.feature_hash,
        train_from: r.train_from,
        train_to: r.train_to,
        test_from: r.test_from,
        test_to: r.test_to,
        test_accuracy: r.test_accuracy,
        created_by: r.created_by,
        created_at: r.created_at,
        deployed_at: r.deployed_at,
        deployed_by: r.deployed_by,
        forced: r.forced,
        size_bytes: r.size_bytes,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Versions {
    pub name: String,
    pub deployed: Option<i64>,
    pub versions: Vec<ModelVersion>,
}

/// Every version of a learned model.
#[utoipa::path(get, path = "/models/{name}/versions", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name (without ml:)")),
    responses(
        (status = 200, body = Versions), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn versions(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
) -> Result<Json<Versions>, ApiError> {
    let store = state.store()?;
    let rows = store.model_versions(Some(&name)).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("model", &name));
    }
    let deployed = rows.iter().find(|r| r.state == "deployed").map(|r| r.version);
    Ok(Json(Versions { name, deployed, versions: rows.into_iter().map(|r| of(r, false)).collect() }))
}

/// One version with its parameters, figures and gate verdict.
#[utoipa::path(get, path = "/models/{name}/versions/{version}", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name"), ("version" = i64, Path, description = "version")),
    responses(
        (status = 200, body = ModelVersion), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn version(
    State(state): State<AppState>,
    _who: Viewer,
    Path((name, version)): Path<(String, i64)>,
) -> Result<Json<ModelVersion>, ApiError> {
    let row = state
        .store()?
        .model_version(&name, version)
        .await?
        .ok_or_else(|| ApiError::not_found("model version", &format!("{name}/{version}")))?;
    Ok(Json(of(row, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    #[serde(deserialize_with = "crate::error::integral")]
    pub version: i64,
    /// Deploy even though the gate refuses (default false); audited with the gate's figures.
    #[serde(default)]
    pub force: bool,
    /// Why (kept in the audit record).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deployed {
    pub name: String,
    pub version: i64,
    /// The version deployed before, now retired.
    pub previous: Option<i64>,
    /// Deployed past a gate that refused it.
    pub forced: bool,
    /// The gate's checks with their figures.
    #[schema(value_type = Object)]
    pub gate: Value,
}

/// Deploys a version through its gate, or forced past it (admin).
#[utoipa::path(post, path = "/models/{name}/deploy", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name")),
    request_body = DeployRequest,
    responses(
        (status = 200, body = Deployed), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn deploy(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    Path(name): Path<String>,
    Json(req): Json<DeployRequest>,
) -> Result<Json<Deployed>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("model_versions/{name}/{}", req.version);
    let store = state.store()?;
    let outcome = async {
        let row = store
            .model_version(&name, req.version)
            .await?
            .ok_or_else(|| ApiError::not_found("model version", &format!("{name}/{}", req.version)))?;
        let (verdict, figures) = tradeflow_models::gate::judge_stored(&row.parameters, &row.metrics)
            .map_err(|e| ApiError::unprocessable("stored_gate", format!("{name}/{}: {e}", req.version)))?;
        let gate = json!({ "verdict": verdict, "figures": figures });
        if !verdict.passed && !req.force {
            return Err(ApiError::conflict(format!(
                "deploy of {name} v{} refused by the gate: {}; force: true deploys it anyway (audited)",
                req.version,
                verdict.refusals()
            ))
            .with_details(gate));
        }
        let forced = !verdict.passed;
        let d = store
            .deploy_model(&name, req.version, &caller.identity.subject, forced, tradeflow_core::time::now_ms())
            .await?
            .ok_or_else(|| ApiError::not_found("model version", &format!("{name}/{}", req.version)))?;
        let details =
            json!({ "name": name, "version": req.version, "forced": forced, "reason": req.reason, "gate": gate });
        Ok((Deployed { name: name.clone(), version: req.version, previous: d.previous, forced, gate }, details))
    }
    .await;
    let action = match &outcome {
        Ok((d, _)) if d.forced => "model_deploy_forced",
        _ => "model_deploy",
    };
    state.audited(&caller, action, &resource, outcome).await.map(Json)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolledBack {
    pub name: String,
    pub from: Option<i64>,
    pub to: i64,
}

/// Deploys again the version deployed before the current one (admin).
#[utoipa::path(post, path = "/models/{name}/rollback", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name")),
    responses(
        (status = 200, body = RolledBack), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    Path(name): Path<String>,
) -> Result<Json<RolledBack>, ApiError> {
    let caller = meta.caller(who);
    let store = state.store()?;
    let outcome = async {
        let from = store.deployed_of(&name).await?;
        let to = store.rollback_target(&name).await?.ok_or_else(|| {
            ApiError::conflict(format!("model {name:?} has no version deployed before the current one"))
        })?;
        store.deploy_model(&name, to, &caller.identity.subject, false, tradeflow_core::time::now_ms()).await?;
        Ok((RolledBack { name: name.clone(), from, to }, json!({ "name": name, "from": from, "to": to })))
    }
    .await;
    state.audited(&caller, "model_rollback", &format!("model_versions/{name}"), outcome).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PerformanceQuery {
    /// The last `days` days, 1 to 365 (default 30).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LearnedModelPerformance {
    pub name: String,
    pub days: i64,
    pub deployed_version: Option<i64>,
    /// The deployed version's accuracy on its test window.
    pub test_accuracy: Option<f64>,
    /// `ok` long/short signals of `ml:NAME` in the window with a next stored bar.
    pub signals: i64,
    /// Of them, those whose next bar moved their way.
    pub hits: i64,
    /// `hits / signals`; `null` when there is no such signal.
    pub live_hit_rate: Option<f64>,
    /// Mean next-bar return in the signals' direction.
    pub mean_return: Option<f64>,
    /// `live_hit_rate − test_accuracy` when both exist.
    pub drift: Option<f64>,
    /// Users' ratings of the model's signals given in the window.
    pub feedback: ModelFeedbackSummary,
    pub notes: Vec<String>,
}

/// Users' ratings (`POST /models/{name}/feedback`), one per user and signal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelFeedbackSummary {
    pub good: i64,
    pub bad: i64,
    /// Distinct signals rated.
    pub signals: i64,
    /// `good / (good + bad)`; `null` without ratings.
    pub good_share: Option<f64>,
    /// When the latest rating was given (epoch ms).
    pub last_at: Option<i64>,
}

/// The live hit rate of a learned model beside its test-window accuracy.
#[utoipa::path(get, path = "/models/{name}/performance", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name"), PerformanceQuery),
    responses(
        (status = 200, body = LearnedModelPerformance), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn performance(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
    Query(q): Query<PerformanceQuery>,
) -> Result<Json<LearnedModelPerformance>, ApiError> {
    let days = check_limit("days", q.days, 30, 365)?;
    let store = state.store()?;
    let rows = store.model_versions(Some(&name)).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("model", &name));
    }
    let deployed = rows.iter().find(|r| r.state == "deployed");
    let since = tradeflow_core::time::now_ms() - days * 86_400_000;
    let model = format!("ml:{name}");
    let Outcome { signals, hits, return_sum } = outcomes(&store.signal_outcomes(since).await?, &model);
    let f = store.model_feedback_counts(&name, since).await?;
    let rated = f.good + f.bad;
    let feedback = ModelFeedbackSummary {
        good: f.good,
        bad: f.bad,
        signals: f.signals,
        good_share: (rated > 0).then(|| f.good as f64 / rated as f64),
        last_at: f.last_at,
    };
    let mut notes = Vec::new();
    let live_hit_rate = (signals > 0).then(|| hits as f64 / signals as f64);
    if signals == 0 {
        notes.push(format!("no long/short signal of {model} with a next bar in the last {days} days"));
    }
    let test_accuracy = deployed.and_then(|r| r.test_accuracy);
    if deployed.is_none() {
        notes.push("no deployed version".into());
    }
    let horizon = deployed
        .and_then(|r| serde_json::from_str::<Value>(&r.parameters).ok())
        .and_then(|p| p["config"]["labels"]["horizon"].as_u64());
    if horizon.is_some_and(|h| h != 1) {
        notes.push("the model's labels look further than the next bar, which the live hit rate judges".into());
    }
    Ok(Json(LearnedModelPerformance {
        drift: live_hit_rate.zip(test_accuracy).map(|(l, t)| l - t),
        name,
        days,
        deployed_version: deployed.map(|r| r.version),
        test_accuracy,
        signals,
        hits,
        live_hit_rate,
        mean_return: (signals > 0).then(|| return_sum / signals as f64),
        feedback,
        notes,
    }))
}

/// The outcomes of one model's signals, its long and short calls summed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Outcome {
    signals: i64,
    hits: i64,
    return_sum: f64,
}

fn outcomes(all: &[OutcomeStats], model: &str) -> Outcome {
    all.iter().filter(|o| o.model == model).fold(Outcome::default(), |a, o| Outcome {
        signals: a.signals + o.signals,
        hits: a.hits + o.hits,
        return_sum: a.return_sum + o.return_sum,
    })
}

/// The window of `tradeflow_model_live_hit_rate`, the performance route's default.
const HIT_RATE_DAYS: i64 = 30;

/// Keeps `tradeflow_model_live_hit_rate{model="ml:NAME"}` of every deployed learned model:
/// the share of its long/short signals recorded in the last 30 days whose next stored bar
/// moved their way (what `GET /models/{name}/performance` reports), measured every
/// `edge.models_refresh_s` until `stop`.
///
/// Here, in the edge, because the outcomes are joins of stored signals and candles: the edge
/// holds the store and serves `/metrics`, while the inference workers that count predictions
/// see neither a signal's next bar nor the store. A model's series is absent until one of its
/// signals has an outcome (no made-up starting value) and removed when it is no longer
/// deployed, so the labels stay the registry's deployed names.
pub async fn run_hit_rates(state: AppState, stop: tokio_util::sync::CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    let gauge = state.metrics.model_live_hit_rate.clone();
    let mut shown: std::collections::BTreeSet<String> = Default::default();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(state.config.models_refresh_s));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = every.tick() => {} }
        let since = tradeflow_core::time::now_ms() - HIT_RATE_DAYS * 86_400_000;
        let measured = async {
            let deployed = store.deployed_models().await?;
            if deployed.is_empty() {
                // The outcome query scans every signal of the window (found by the soak: 68 s a
                // run after an hour at 1,000 candles/s); with no learned model there is nothing
                // to measure, so the store is not asked.
                return Ok(Default::default());
            }
            let all = store.signal_outcomes(since).await?;
            Ok::<_, tradeflow_audit::AuditError>(hit_rates(&deployed, &all))
        }
        .await;
        match measured {
            Ok(rates) => {
                for gone in shown.iter().filter(|m| !rates.contains_key(*m)) {
                    let _ = gauge.remove_label_values(&[gone.as_str()]);
                }
                for (model, rate) in &rates {
                    gauge.with_label_values(&[model.as_str()]).set(*rate);
                }
                shown = rates.into_keys().collect();
            }
            // The last measure stays: a store that is briefly away does not reset the figures.
            Err(e) => tracing::warn!(error = %e, "measuring the learned models' live hit rates failed"),
        }
    }
}

/// `ml:NAME` → hit rate, for each deployed model with at least one judged signal.
fn hit_rates(deployed: &[(String, i64)], all: &[OutcomeStats]) -> std::collections::BTreeMap<String, f64> {
    deployed
        .iter()
        .filter_map(|(name, _)| {
            let model = format!("{}{name}", tradeflow_inference::ml::PREFIX);
            let o = outcomes(all, &model);
            (o.signals > 0).then(|| (model, o.hits as f64 / o.signals as f64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(model: &str, action: &str, signals: i64, hits: i64) -> OutcomeStats {
        OutcomeStats { model: model.into(), action: action.into(), signals, hits, return_sum: 0.0 }
    }

    #[test]
    fn hit_rates_of_deployed_models_with_judged_signals_only() {
        let all = [
            stat("ml:a", "long", 3, 2),
            stat("ml:a", "short", 1, 1),
            stat("ml:b", "long", 5, 1),
            stat("rsi", "long", 9, 9),
        ];
        let deployed = [("a".to_string(), 2), ("c".to_string(), 1)];
        let rates = hit_rates(&deployed, &all);
        // b is not deployed; c has no judged signal: both absent, not 0.
        assert_eq!(rates.into_iter().collect::<Vec<_>>(), [("ml:a".to_string(), 0.75)]);
    }
}
