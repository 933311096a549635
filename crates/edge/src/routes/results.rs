//! Results of jobs: backtests (statistics, trades page by page, the equity curve, the HTML
//! report) and hyperparameter searches (every trial, the best), as the jobs workers stored
//! them in `job_results`. The same visibility as `/tasks`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tradeflow_audit::query::jobs::{JobFilter, JobRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tasks::{Task, TaskPage, page, visible_job};
use crate::auth::{Role, Viewer};
use crate::error::{ApiError, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(backtests))
        .routes(routes!(backtest))
        .routes(routes!(backtest_report))
        .routes(routes!(hyperopt))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// 0 or more.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// Backtest jobs, newest first, with their summaries.
#[utoipa::path(get, path = "/backtests", tag = "tasks", security(("bearer" = []), ("api_key" = [])), params(ListQuery),
    responses((status = 200, body = TaskPage), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn backtests(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let mine = (who.role != Role::Admin).then_some(who.subject.as_str());
    let filter = JobFilter { kind: Some("backtest"), submitted_by: mine, ..Default::default() };
    let (rows, total) = state.store()?.jobs(filter, limit, offset).await?;
    Ok(Json(TaskPage { items: rows.into_iter().map(Task::from).collect(), total, limit, offset }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TradesQuery {
    /// Trades per account: 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    pub trades_limit: Option<i64>,
    /// First trade shown, per account (default 0).
    #[param(minimum = 0)]
    pub trades_offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestResult {
    pub task: Task,
    /// `tradeflow backtest --json`'s report: candles, signals, decisions, notes, refused rows,
    /// and per account its statistics, its trades (this page of them, with `trades_total`)
    /// and its equity curve.
    #[schema(value_type = Object)]
    pub report: Value,
}

/// A job's stored result for `kind`, or 404 (409 while it has none yet).
async fn result_of(state: &AppState, job: &JobRecord, kind: &str) -> Result<(String, Option<String>), ApiError> {
    if job.kind != kind {
        return Err(ApiError::not_found(kind, &job.id));
    }
    match state.store()?.job_result(&job.id).await? {
        Some(r) => Ok((r.result, r.report_html)),
        None => Err(ApiError::conflict(format!("task {} is {}; it has no result yet", job.id, job.state))),
    }
}

/// A backtest's report: statistics per account, trades page by page, the equity curve.
#[utoipa::path(get, path = "/backtests/{id}", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id"), TradesQuery),
    responses((status = 200, body = BacktestResult), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "not finished"), (status = 503, body = crate::error::ErrorBody)))]
async fn backtest(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Path(id): Path<String>,
    Query(q): Query<TradesQuery>,
) -> Result<Json<BacktestResult>, ApiError> {
    let limit = q.trades_limit.unwrap_or(500);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", format!("trades_limit: expected 1 to 5000, got {limit}")));
    }
    let offset = q.trades_offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("bad_offset", format!("trades_offset: expected 0 or more, got {offset}")));
    }
    let job = visible_job(&state, &who, &id).await?;
    let (result, _) = result_of(&state, &job, "backtest").await?;
    let mut report: Value = serde_json::from_str(&result)
        .map_err(|e| ApiError::unavailable("stored result", format!("task {id}'s result is not JSON: {e}")))?;
    if let Some(accounts) = report.get_mut("accounts").and_then(Value::as_array_mut) {
        for a in accounts {
            if let Some(trades) = a.get_mut("trades").and_then(Value::as_array_mut) {
                let total = trades.len();
                let page: Vec<Value> = trades.drain(..).skip(offset as usize).take(limit as usize).collect();
                *trades = page;
                a["trades_total"] = Value::from(total);
            }
        }
    }
    Ok(Json(BacktestResult { task: job.into(), report }))
}

/// A backtest's HTML report (its first account): charts, statistics, trades, one page.
#[utoipa::path(get, path = "/backtests/{id}/report", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, content_type = "text/html", body = String), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn backtest_report(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &who, &id).await?;
    let (_, html) = result_of(&state, &job, "backtest").await?;
    let html = html.ok_or_else(|| ApiError::not_found("report", &id))?;
    let mut response = html.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HyperoptResult {
    pub task: Task,
    /// `tradeflow hyperopt --json`'s outcome: every trial, the best ones with their
    /// out-of-sample figures, the folds.
    #[schema(value_type = Object)]
    pub outcome: Value,
    /// The winner (the first of `outcome.top` with an in-sample figure), or `null`.
    #[schema(value_type = Option<Object>)]
    pub best: Option<Value>,
}

/// A hyperparameter search's trials and best.
#[utoipa::path(get, path = "/hyperopt/{id}", tag = "tasks", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "task id")),
    responses((status = 200, body = HyperoptResult), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn hyperopt(
    State(state): State<AppState>,
    Viewer(who): Viewer,
    Path(id): Path<String>,
) -> Result<Json<HyperoptResult>, ApiError> {
    let job = visible_job(&state, &who, &id).await?;
    let (result, _) = result_of(&state, &job, "hyperopt").await?;
    let outcome: Value = serde_json::from_str(&result)
        .map_err(|e| ApiError::unavailable("stored result", format!("task {id}'s result is not JSON: {e}")))?;
    let best = outcome
        .get("top")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .filter(|b| b.get("in_sample").is_some_and(|v| !v.is_null()))
        .cloned();
    Ok(Json(HyperoptResult { task: job.into(), outcome, best }))
}
