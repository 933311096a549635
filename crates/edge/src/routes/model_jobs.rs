//! `POST /models/{name}/train` and `POST /models/{name}/retrain` (trader): `train` jobs
//! submitted through the jobs machinery ([`super::tasks::enqueue`]: validation, quotas, the
//! `task_submit` audit record), answered 202 with the task id; follow them at `/tasks/{id}`.
//!
//! - train: the body is `POST /tasks/train`'s without `name` (the path's).
//! - retrain: no body; the job trains a new version with the stored settings of the deployed
//!   version (the latest's when none is deployed) on the same source up to its latest bar,
//!   through the same gate (`tradeflow models retrain`). Deploying it stays an admin's call.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tradeflow_core::job::JobKind;

use super::tasks::{Submitted, enqueue};
use crate::auth::Trader;
use crate::error::{ApiError, Json, Path};
use crate::state::{AppState, RequestMeta};

fn invalid(problem: String) -> ApiError {
    ApiError::unprocessable("invalid_params", format!("invalid train parameters: {problem}"))
        .with_details(json!({ "problems": [problem] }))
}

/// The job's parameters: the body with the path's name.
fn with_name(name: &str, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut params) = body else { return Err(invalid("params: expected a JSON object".into())) };
    if let Some(given) = params.get("name")
        && given.as_str() != Some(name)
    {
        return Err(invalid(format!("name: {given} differs from the path's {name:?}; leave it out")));
    }
    if params.contains_key("retrain") {
        return Err(invalid("retrain: not a training parameter; POST /models/{name}/retrain retrains".into()));
    }
    params.insert("name".into(), Value::String(name.into()));
    Ok(Value::Object(params))
}

/// Submits the training of a new version of a learned model (trader): `POST /tasks/train`'s
/// parameters without `name`.
#[utoipa::path(post, path = "/models/{name}/train", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name (without ml:)")),
    request_body(content = Object, description = "the training's parameters (family, dataset, from, to, horizon, ...), without name"),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 400, body = crate::error::ErrorBody, description = "the body is not JSON"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn train(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let params = with_name(&name, body)?;
    let caller = meta.caller(who);
    let submitted = enqueue(&state, &caller, JobKind::Train, params, None).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)))
}

/// Submits a retrain of a learned model (trader): a new version with its stored settings on
/// the latest window, through the same gate.
#[utoipa::path(post, path = "/models/{name}/retrain", tag = "models", security(("bearer" = []), ("api_key" = [])),
    params(("name" = String, Path, description = "the learned model's name (without ml:)")),
    responses(
        (status = 202, body = Submitted, description = "queued"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody, description = "no such model in the registry"),
        (status = 422, body = crate::error::ErrorBody, description = "invalid parameters, each named"),
        (status = 429, body = crate::error::ErrorBody, description = "a job quota is reached"),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn retrain(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    // Refused here rather than by the worker: a job that can only fail is not queued.
    if state.store()?.model_versions(Some(&name)).await?.is_empty() {
        return Err(ApiError::not_found("model", &name));
    }
    let caller = meta.caller(who);
    let submitted = enqueue(&state, &caller, JobKind::Train, json!({ "name": name, "retrain": true }), None).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_name_goes_into_the_parameters() {
        let p = with_name("demo", json!({"family": "gbt"})).unwrap();
        assert_eq!(p, json!({"family": "gbt", "name": "demo"}));
        assert!(with_name("demo", json!({"family": "gbt", "name": "demo"})).is_ok());
        let e = with_name("demo", json!({"family": "gbt", "name": "other"})).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("differs"), "{}", e.message);
        assert!(with_name("demo", json!({"retrain": true})).unwrap_err().message.contains("retrain"));
        assert!(with_name("demo", json!([1])).is_err());
    }
}
