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
//!   `/ai/performance` does) beside the deployed version's test-window accuracy.
//!
//! Every deploy, refused deploy and rollback is written to the audit log.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
pub struct Performance {
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
    pub notes: Vec<String>,
}

/// The live hit rate of a learned model beside its test-window accuracy.
#[utoipa::path(get, path = "/models/{name}/performance", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name"), PerformanceQuery),
    responses(
        (status = 200, body = Performance), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn performance(
    State(state): State<AppState>,
    _who: Viewer,
    Path(name): Path<String>,
    Query(q): Query<PerformanceQuery>,
) -> Result<Json<Performance>, ApiError> {
    let days = check_limit("days", q.days, 30, 365)?;
    let store = state.store()?;
    let rows = store.model_versions(Some(&name)).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("model", &name));
    }
    let deployed = rows.iter().find(|r| r.state == "deployed");
    let since = tradeflow_core::time::now_ms() - days * 86_400_000;
    let model = format!("ml:{name}");
    let (mut signals, mut hits, mut return_sum) = (0, 0, 0.0);
    for o in store.signal_outcomes(since).await?.into_iter().filter(|o| o.model == model) {
        signals += o.signals;
        hits += o.hits;
        return_sum += o.return_sum;
    }
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
    Ok(Json(Performance {
        drift: live_hit_rate.zip(test_accuracy).map(|(l, t)| l - t),
        name,
        days,
        deployed_version: deployed.map(|r| r.version),
        test_accuracy,
        signals,
        hits,
        live_hit_rate,
        mean_return: (signals > 0).then(|| return_sum / signals as f64),
        notes,
    }))
}
