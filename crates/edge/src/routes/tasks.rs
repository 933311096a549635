//! Jobs (`/tasks`): submit a backtest, a hyperparameter search, a download or a training run,
//! follow it, cancel it, retry it. The edge validates a submission (the job's own parameter
//! types, every problem named), checks the caller's quotas, and puts the request on
//! `jobs.requests`; the jobs workers run it and keep its state in the store, which is what
//! these routes read. Cancels are `cancel_task` commands. Live: WebSocket channel `tasks`.
//!
//! Visibility: an admin sees every job; anyone else their own.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_audit::query::jobs::{JobFilter, JobRecord};
use tradeflow_backtest::hyperopt::params::HyperoptParams;
use tradeflow_backtest::params::{BacktestParams, Defaults};
use tradeflow_core::control::Command;
use tradeflow_core::job::{JobKind, JobRequest, JobState};
use tradeflow_core::time::now_ms;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Identity, Role, Trader, Viewer};
use crate::error::{ApiError, Json, Path, Query};
use crate::quota::{self, QuotaLimits, QuotaRefusal, Usage};
use crate::state::{AppState, Caller, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_backtest))
        .routes(routes!(submit_hyperopt))
        .routes(routes!(submit_download))
        .routes(routes!(submit_train))
        .routes(routes!(list))
        .routes(routes!(stats))
        .routes(routes!(quotas))
        .routes(routes!(show, cancel))
        .routes(routes!(retry))
}

pub const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 50;
/// How long a submission waits for the audit writer to store it `queued`, so that the caller's
/// next read finds it (the request is on the bus either way).
const STORED_WAIT: Duration = Duration::from_secs(2);

/// One job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub task_id: String,
    /// backtest, hyperopt, download, train.
    pub kind: String,
    /// queued, running, succeeded, failed, cancelled.
    pub status: String,
    /// Runs started (a crashed run counts).
    pub attempt: i64,
    pub submitted_by: String,
    pub submitted_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// 0 to 1 while running (1 once succeeded).
    pub progress: Option<f64>,
    /// What it is doing (`candles`, `trials`, `out of sample`, `pages`).
    pub step: Option<String>,
    /// Seconds left at the pace so far; `null` before there is a pace.
    pub eta_s: Option<f64>,
    pub error: Option<String>,
    /// The result summary of a succeeded job.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// The parameters it was submitted with.
    #[schema(value_type = Object)]
    pub params: Value,
    /// The worker running it, or that ran it last.
    pub worker: Option<String>,
}

impl From<JobRecord> for Task {
    fn from(r: JobRecord) -> Self {
        Task {
            task_id: r.id,
            kind: r.kind,
            status: r.state,
            attempt: r.attempt,
            submitted_by: r.submitted_by,
            submitted_at: r.submitted_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
            progress: r.progress,
            step: r.step,
            eta_s: r.eta_s,
            error: r.error,
            summary: r.summary.and_then(|s| serde_json::from_str(&s).ok()),
            params: serde_json::from_str(&r.params).unwrap_or(Value::Null),
            worker: r.worker,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Submitted {
    pub task_id: String,
    pub kind: String,
    /// `queued`.
    pub status: String,
    /// Whether the store already lists it (it normally does; the request is queued either way).
    pub stored: bool,
}

/// The job kind named in a path, or a 400 listing the kinds.
pub fn kind_of(name: &str) -> Result<JobKind, ApiError> {
    JobKind::parse(name).ok_or_else(|| {
        ApiError::bad_request("unknown_kind", format!("unknown job kind {name:?}; expected one of {}", JobKind::NAMES))
            .with_details(json!({ "field": "kind", "kinds": JobKind::ALL.map(JobKind::name) }))
    })
}

/// Checks `params` against `kind`'s parameter type; every problem is listed, each naming its
/// field.
pub fn validate(state: &AppState, kind: JobKind, params: &Value) -> Result<(), ApiError> {
    check_params(&state.config.datasets_dir, kind, params).map_err(|problems| {
        ApiError::unprocessable(
            "invalid_params",
            format!("invalid {} parameters: {}", kind.name(), problems.join("; ")),
        )
        .with_details(json!({ "problems": problems }))
    })
}

/// The problems of `params` for `kind`, datasets looked up under `datasets_dir`: what
/// [`validate`] answers with. Public (rather than private to `validate`) so that the fuzz
/// target `edge_task_params` feeds the handlers' own check without an `AppState`.
pub fn check_params(datasets_dir: &std::path::Path, kind: JobKind, params: &Value) -> Result<(), Vec<String>> {
    // The demo feed is the workers' to read; validation does not open it. Datasets are
    // looked up where this edge's `datasets_dir` says (the jobs workers' must be the same).
    let defaults =
        Defaults { datasets_dir: datasets_dir.to_path_buf(), ..Defaults::standard(std::path::PathBuf::new()) };
    match kind {
        JobKind::Backtest => BacktestParams::from_api(params).and_then(|p| p.build(&defaults).map(|_| ())),
        JobKind::Hyperopt => HyperoptParams::from_api(params).and_then(|p| p.plan(&defaults, 1).map(|_| ())),
        JobKind::Download => validate_download(params),
        JobKind::Train => validate_train(datasets_dir, params),
    }
}

/// A training's or a retrain's parameters; a dataset must be one of `datasets_dir`'s.
fn validate_train(datasets_dir: &std::path::Path, params: &Value) -> Result<(), Vec<String>> {
    use tradeflow_models::job::TrainJob;
    if let TrainJob::Train(p) = TrainJob::from_api(params)?
        && let Some(spec) = &p.dataset
    {
        tradeflow_datasets::Datasets::new(datasets_dir.to_path_buf())
            .resolve(spec)
            .map_err(|e| vec![format!("dataset: {e}")])?;
    }
    Ok(())
}

/// A download's parameters.
fn validate_download(params: &Value) -> Result<(), Vec<String>> {
    tradeflow_datasets::DownloadRequest::from_api(params).map(|_| ())
}

/// What `who` has in the store, for `kind`'s quotas.
async fn usage(state: &AppState, who: &Identity, kind: JobKind) -> Result<Usage, ApiError> {
    let u = state.store()?.job_usage(&who.subject, quota::day_start(now_ms())).await?;
    let today = u.submitted_since.iter().find(|(k, _)| k == kind.name()).map_or(0, |(_, n)| *n);
    Ok(Usage { running: u.running as u32, queued: u.queued as u32, today: today as u32 })
}

fn refused(r: QuotaRefusal) -> ApiError {
    let retry_after = r.frees_at.map(|t| ((t - now_ms()).max(0) as u64).div_ceil(1000));
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        format!("job quota {} reached ({} of {}); it frees up {}", r.quota, r.used, r.limit, r.frees),
    )
    .with_details(serde_json::to_value(&r).unwrap_or(Value::Null));
    e.retry_after = retry_after;
    e
}

/// Validates, checks quotas, queues, audits; shared by `POST /tasks/{kind}`, a retry and
/// `POST /data/download`.
pub async fn enqueue(
    state: &AppState,
    caller: &Caller,
    kind: JobKind,
    params: Value,
    task: Option<(String, u32)>,
) -> Result<Submitted, ApiError> {
    let store = state.store()?;
    if !params.is_object() {
        return Err(ApiError::unprocessable("invalid_params", "params: expected a JSON object")
            .with_details(json!({ "problems": ["params: expected a JSON object"] })));
    }
    validate(state, kind, &params)?;
    let who = &caller.identity;
    let limits = state.config.tasks.limits(&who.subject, who.role.as_str());
    quota::check(limits, &usage(state, who, kind).await?, kind, now_ms()).map_err(refused)?;
    let now = now_ms();
    let (task_id, submission) = task.unwrap_or_else(|| (JobRequest::new_task_id(now), 1));
    let request = JobRequest {
        task_id: task_id.clone(),
        kind,
        params: params.to_string(),
        submitted_by: who.subject.clone(),
        role: who.role.as_str().into(),
        submitted_at: now,
        submission,
    };
    state.producer.publish("jobs.requests", &request.message_id(), &task_id, None, &request).await?;
    let action = if submission == 1 { "task_submit" } else { "task_retry" };
    state.audit(caller, action, &task_id, "ok", json!({ "kind": kind.name(), "submission": submission })).await?;
    // Read-your-writes: the audit writer stores it within milliseconds normally.
    let deadline = tokio::time::Instant::now() + STORED_WAIT;
    let mut stored = false;
    while tokio::time::Instant::now() < deadline {
        if let Some(job) = store.job(&task_id).await?
            && (submission == 1 || job.submission.unwrap_or(1) >= i64::from(submission) || job.state == "queued")
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Submitted { task_id, kind: kind.name().into(), status: JobState::Queued.name().into(), stored })
}

/// Queues a job of `kind` with `params` (the body) for the caller.
async fn submit(
    state: AppState,
    who: Identity,
    meta: RequestMeta,
    kind: JobKind,
    params: Value,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let caller = meta.caller(who);
    let submitted = enqueue(&state, &caller, kind, params, None).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)))
}

/// Submits a backtest (trader). The body: `tradeflow backtest`'s parameters by their flag
/// names (`strategy`, `params`, `cash`, `commission`, `models`, `llm_config`, `profiles` and
/// `accounts` as TOML text, `from`, `to`, `interval`, `aggregate`, `strict`, `dataset`); none:
/// the default profile over the bundled demo feed. The result: `GET /backtests/{id}`. 422
/// lists every bad field; 429 names the quota and when it frees up.
#[utoipa::path(post, path = "/tasks/backtest", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "the backtest's parameters"),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
async fn submit_backtest(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(params): Json<Value>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    submit(state, who, meta, JobKind::Backtest, params).await
}

/// Submits a hyperparameter search (trader). The body: `{backtest: {...the base backtest},
/// space: "<TOML [param] entries>", objective, method, trials, seed, jobs, walk_forward,
/// test_fraction, top, account}`. The result: `GET /hyperopt/{id}`.
#[utoipa::path(post, path = "/tasks/hyperopt", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "the search's parameters"),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
async fn submit_hyperopt(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(params): Json<Value>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    submit(state, who, meta, JobKind::Hyperopt, params).await
}

/// Submits a download of Binance spot klines into a dataset (trader): `{symbol, interval,
/// from, to}`. The same as `POST /data/download`.
#[utoipa::path(post, path = "/tasks/download", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "the download's parameters"),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
async fn submit_download(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(params): Json<Value>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    submit(state, who, meta, JobKind::Download, params).await
}

/// Submits the training of a learned model (trader): `tradeflow models train`'s flags by name
/// (`name`, `family`, `dataset`, `from`, `to`, `horizon`, ...), or `{name, retrain: true}`
/// for a retrain with the model's stored settings.
#[utoipa::path(post, path = "/tasks/train", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "the training's parameters"),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
async fn submit_train(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(params): Json<Value>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    submit(state, who, meta, JobKind::Train, params).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// queued, running, succeeded, failed, cancelled.
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)$")]
    pub status: Option<String>,
    /// backtest, hyperopt, download, train.
    #[param(pattern = "^(backtest|hyperopt|download|train)$")]
    pub kind: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// 0 or more (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `limit` and `offset` checked.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", format!("limit: expected 1 to {MAX_LIMIT}, got {limit}")));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("bad_offset", format!("offset: expected 0 or more, got {offset}")));
    }
    Ok((limit, offset))
}

/// Whose jobs `who` may see: everyone's for an admin, else their own.
fn owner_filter(who: &Identity) -> Option<&str> {
    (who.role != Role::Admin).then_some(who.subject.as_str())
}

/// Lists jobs, newest first (an admin sees all, others their own).
#[utoipa::path(get, path = "/tasks", tag = "tasks", security(("bearer" = []), ("api_key" = [])), params(TaskQuery),
    responses((status = 200, body = TaskPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Query(q): Query<TaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.status
        && JobState::parse(s).is_none()
    {
        return Err(ApiError::bad_request("bad_status", format!("status {s:?}: expected one of {}", JobState::NAMES)));
    }
    if let Some(k) = &q.kind {
        kind_of(k)?;
    }
    let filter = JobFilter { state: q.status.as_deref(), kind: q.kind.as_deref(), submitted_by: owner_filter(&who) };
    let (rows, total) = state.store()?.jobs(filter, limit, offset).await?;
    Ok(Json(TaskPage { items: rows.into_iter().map(Task::from).collect(), total, limit, offset }))
}

/// A job the caller may see, or 404.
pub async fn visible_job(state: &AppState, who: &Identity, id: &str) -> Result<JobRecord, ApiError> {
    match state.store()?.job(id).await? {
        Some(job) if owner_filter(who).is_none_or(|me| me == job.submitted_by) => Ok(job),
        _ => Err(ApiError::not_found("task", id)),
    }
}

/// One job: state, progress, ETA, result summary, error.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = Task), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(visible_job(&state, &who, &id).await?.into()))
}

/// Cancels a queued or running job (trader): a running one stops within a second. 409 for a
/// job already over.
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id")),
    responses(
        (status = 200, body = Task, description = "cancelled"),
        (status = 202, body = Task, description = "cancel sent; the job had not stopped within 2 s"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let caller = meta.caller(who.clone());
    let outcome = async {
        let job = visible_job(&state, &who, &id).await?;
        if JobState::parse(&job.state).is_some_and(JobState::is_final) {
            return Err(ApiError::conflict(format!("task {id} is {} already; nothing to cancel", job.state)));
        }
        state.command(&caller, Command::CancelTask { task: id.clone() }).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let job = visible_job(&state, &who, &id).await?;
            let over = JobState::parse(&job.state).is_some_and(JobState::is_final);
            if over || tokio::time::Instant::now() >= deadline {
                let status = if over { StatusCode::OK } else { StatusCode::ACCEPTED };
                return Ok(((status, Json(Task::from(job))), json!({ "cancelled": over })));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    state.audited(&caller, "task_cancel", &id, outcome).await
}

/// Runs a failed or cancelled job again with the same parameters (trader): the same task id,
/// its attempt count going on. Quotas apply as to a submission.
#[utoipa::path(post, path = "/tasks/{id}/retry", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id")),
    responses((status = 202, body = Submitted), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn retry(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let job = visible_job(&state, &who, &id).await?;
    if !matches!(job.state.as_str(), "failed" | "cancelled") {
        return Err(ApiError::conflict(format!(
            "task {id} is {}; only a failed or cancelled task can be retried",
            job.state
        )));
    }
    let kind = kind_of(&job.kind)?;
    let params: Value = serde_json::from_str(&job.params).unwrap_or(Value::Null);
    let submission = u32::try_from(job.submission.unwrap_or(1).max(1)).unwrap_or(u32::MAX - 1) + 1;
    let caller = meta.caller(who);
    let submitted = enqueue(&state, &caller, kind, params, Some((id, submission))).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KindStats {
    pub kind: String,
    /// Jobs by state.
    #[schema(value_type = Object)]
    pub by_state: Value,
    /// Mean seconds from start to end of this kind's finished jobs; `null` when none finished.
    pub mean_run_s: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskStats {
    pub kinds: Vec<KindStats>,
    /// Jobs waiting to start (all users).
    pub queue_length: i64,
    pub running: i64,
    pub total: i64,
}

/// Counts by state and kind, mean run time, queue length (all users).
#[utoipa::path(get, path = "/tasks/stats", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = TaskStats), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn stats(State(state): State<AppState>, _who: Viewer) -> Result<Json<TaskStats>, ApiError> {
    let counts = state.store()?.job_counts().await?;
    let mut kinds: Vec<KindStats> = Vec::new();
    let (mut queue_length, mut running, mut total) = (0, 0, 0);
    for kind in JobKind::ALL {
        let mine: Vec<_> = counts.iter().filter(|c| c.kind == kind.name()).collect();
        let by_state: serde_json::Map<String, Value> = JobState::ALL
            .iter()
            .map(|s| (s.name().to_string(), json!(mine.iter().find(|c| c.state == s.name()).map_or(0, |c| c.count))))
            .collect();
        // The mean over finished states, weighted by their counts.
        let finished: Vec<_> = mine.iter().filter(|c| c.mean_run_s.is_some()).collect();
        let n: i64 = finished.iter().map(|c| c.count).sum();
        let mean_run_s = (n > 0)
            .then(|| finished.iter().map(|c| c.mean_run_s.unwrap_or(0.0) * c.count as f64).sum::<f64>() / n as f64);
        kinds.push(KindStats { kind: kind.name().into(), by_state: Value::Object(by_state), mean_run_s });
    }
    for c in &counts {
        total += c.count;
        match c.state.as_str() {
            "queued" => queue_length += c.count,
            "running" => running += c.count,
            _ => {}
        }
    }
    Ok(Json(TaskStats { kinds, queue_length, running, total }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaUsage {
    pub running: i64,
    pub queued: i64,
    /// Submitted today (UTC), by kind.
    #[schema(value_type = Object)]
    pub today: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Quotas {
    pub user: String,
    pub role: String,
    pub limits: QuotaLimits,
    pub usage: QuotaUsage,
    /// When today's counts start again (epoch ms, the next UTC midnight).
    pub day_resets_at: i64,
}

/// The caller's job limits and what they use of them.
#[utoipa::path(get, path = "/tasks/quotas", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Quotas), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn quotas(State(state): State<AppState>, Viewer(who): Viewer) -> Result<Json<Quotas>, ApiError> {
    let day = quota::day_start(now_ms());
    let u = state.store()?.job_usage(&who.subject, day).await?;
    let today: serde_json::Map<String, Value> = JobKind::ALL
        .iter()
        .map(|k| {
            (k.name().to_string(), json!(u.submitted_since.iter().find(|(n, _)| n == k.name()).map_or(0, |(_, c)| *c)))
        })
        .collect();
    Ok(Json(Quotas {
        limits: state.config.tasks.limits(&who.subject, who.role.as_str()).clone(),
        user: who.subject,
        role: who.role.as_str().into(),
        usage: QuotaUsage { running: u.running, queued: u.queued, today: Value::Object(today) },
        day_resets_at: day + 86_400_000,
    }))
}
