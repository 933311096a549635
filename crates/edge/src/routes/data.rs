//! Datasets (historical candles, crates/datasets) in the configured `datasets_dir`:
//! `GET /data/datasets` (viewer) lists them with their range, rows and gaps;
//! `DELETE /data/datasets/{symbol}/{interval}` (admin, audited) deletes one. Downloads are
//! jobs (`POST /data/download`), not run by the edge.
//!
//! A dataset is named as on the command line: `{symbol}/{interval}` means Binance's when there
//! is one, else the one source that has it; `?source=` names another. The files are read on a
//! blocking thread, off the async workers.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeflow_datasets::{DatasetError, DatasetInfo, Datasets};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Viewer};
use crate::error::{ApiError, Json, Path, Query};
use crate::state::{AppState, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_datasets)).routes(routes!(delete_dataset)).routes(routes!(download))
}

/// Downloads Binance spot klines into a dataset (trader): a `download` job, the same as
/// `POST /tasks/download`. Body `{symbol, interval, from, to}` (`from`/`to`: `YYYY-MM-DD` or
/// epoch ms; no `to`: up to now). Resumable: a dataset that already has bars continues after
/// its last one. Follow it with `GET /tasks/{id}`.
#[utoipa::path(post, path = "/data/download", tag = "data", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "{symbol, interval, from, to}"),
    responses(
        (status = 202, body = crate::routes::tasks::Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
async fn download(
    State(state): State<AppState>,
    crate::auth::Trader(who): crate::auth::Trader,
    meta: RequestMeta,
    Json(params): Json<serde_json::Value>,
) -> Result<(axum::http::StatusCode, Json<crate::routes::tasks::Submitted>), ApiError> {
    let caller = meta.caller(who);
    let submitted =
        crate::routes::tasks::enqueue(&state, &caller, tradeflow_core::job::JobKind::Download, params, None).await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(submitted)))
}

/// Bars missing between two bars present: `[from, to)`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetGap {
    /// Open time of the first missing bar (epoch ms).
    pub from: i64,
    /// Open time of the next bar present (epoch ms).
    pub to: i64,
    pub missing: u64,
}

/// One dataset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dataset {
    pub source: String,
    pub symbol: String,
    pub interval: String,
    /// How to name it in a backtest (`BTCUSDT:1h`, `csv:BTCUSD:1h`).
    pub spec: String,
    /// Open time of the first and last bar (epoch ms); null when empty or unreadable.
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    pub rows: u64,
    pub gaps: Vec<DatasetGap>,
    /// Bars missing over all gaps.
    pub missing: u64,
    pub file_bytes: u64,
    /// Why the file could not be read, if it could not.
    pub problem: Option<String>,
}

impl From<DatasetInfo> for Dataset {
    fn from(d: DatasetInfo) -> Self {
        Dataset {
            source: d.source,
            symbol: d.symbol,
            interval: d.interval.to_string(),
            spec: d.spec,
            first_bar: d.first_bar,
            last_bar: d.last_bar,
            rows: d.rows,
            gaps: d.gaps.into_iter().map(|g| DatasetGap { from: g.from, to: g.to, missing: g.missing }).collect(),
            missing: d.missing,
            file_bytes: d.file_bytes,
            problem: d.problem,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    pub items: Vec<Dataset>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetDeleted {
    /// What the dataset was when deleted.
    pub deleted: Dataset,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DatasetQuery {
    /// The source (`binance`, `csv`, ...); default Binance's, else the one source that has it.
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,39}$")]
    pub source: Option<String>,
}

/// A dataset error in the one error format: the caller's mistakes are 4xx (an unknown dataset
/// a 404 listing those that exist), a storage failure a 503.
fn api_error(e: DatasetError) -> ApiError {
    match e {
        DatasetError::Unknown { ref spec, ref available, .. } => ApiError::not_found("dataset", spec)
            .with_details(json!({ "resource": "dataset", "name": spec, "known": available })),
        DatasetError::Locked { .. } => ApiError::conflict(e.to_string()),
        e if e.is_bad_input() => ApiError::bad_request("invalid_request", e.to_string()),
        e => ApiError::unavailable("datasets", e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DatasetError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::unavailable("datasets", e))?.map_err(api_error)
}

fn datasets(state: &AppState) -> Datasets {
    Datasets::new(state.config.datasets_dir.clone())
}

/// The datasets: source, symbol, interval, first and last bar, rows, gaps, size.
#[utoipa::path(get, path = "/data/datasets", tag = "data", security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = DatasetList),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn list_datasets(State(state): State<AppState>, _who: Viewer) -> Result<Json<DatasetList>, ApiError> {
    let datasets = datasets(&state);
    let list = blocking(move || datasets.list()).await?;
    Ok(Json(DatasetList { items: list.into_iter().map(Dataset::from).collect() }))
}

/// Deletes a dataset (admin).
#[utoipa::path(delete, path = "/data/datasets/{symbol}/{interval}", tag = "data", security(("bearer" = []), ("api_key" = [])),
    params(
        ("symbol" = String, Path, description = "symbol, e.g. BTCUSDT", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,39}$"),
        ("interval" = String, Path, description = "interval, e.g. 1h", pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$"),
        DatasetQuery),
    responses(
        (status = 200, body = DatasetDeleted),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn delete_dataset(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    Path((symbol, interval)): Path<(String, String)>,
    Query(q): Query<DatasetQuery>,
) -> Result<Json<DatasetDeleted>, ApiError> {
    let spec = match &q.source {
        Some(source) => format!("{source}:{symbol}:{interval}"),
        None => format!("{symbol}:{interval}"),
    };
    let datasets = datasets(&state);
    let target = spec.clone();
    let outcome = blocking(move || datasets.delete(&target)).await.map(|info| {
        let details =
            json!({ "spec": info.spec, "rows": info.rows, "first_bar": info.first_bar, "last_bar": info.last_bar });
        (DatasetDeleted { deleted: info.into() }, details)
    });
    let resource = format!("/data/datasets/{symbol}/{interval}");
    let deleted = state.audited(&meta.caller(who), "data.delete", &resource, outcome).await?;
    Ok(Json(deleted))
}
