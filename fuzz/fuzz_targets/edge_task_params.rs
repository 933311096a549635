//! The parameters of `POST /tasks/{kind}` (and `POST /data/download`): any JSON body checked
//! by [`check_params`], what the handlers' `validate` runs, for every job kind (backtest,
//! hyperopt, download, train).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_core::job::JobKind;
use tradeflow_edge::routes::tasks::check_params;

fuzz_target!(|data: &[u8]| {
    let Ok(axum::Json(params)) = axum::Json::<serde_json::Value>::from_bytes(data) else { return };
    // The handlers refuse a body that is not an object before validating it.
    if !params.is_object() {
        return;
    }
    let datasets = std::path::Path::new("/nonexistent/tradeflow-fuzz/datasets");
    for kind in [JobKind::Backtest, JobKind::Hyperopt, JobKind::Download, JobKind::Train] {
        let _ = check_params(datasets, kind, &params);
    }
});
