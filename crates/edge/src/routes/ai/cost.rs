//! `GET /ai/cost/statistics`: LLM requests, tokens and cost over every process that runs
//! analysts.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cost_statistics))
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AnalystCost {
    pub analyst: String,
    /// Requests (and analyses made without one) by outcome: ok, http_error, rate_limited,
    /// timeout, malformed, skipped, cached.
    pub requests: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// HTTP requests timed, and their mean duration.
    pub http_requests: u64,
    pub mean_request_seconds: Option<f64>,
}

/// One process's share.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessCost {
    /// `host:pid:start`.
    pub process: String,
    /// This edge's own process (its counters read live).
    pub this_process: bool,
    /// When its counters were published (epoch ms; now for this process).
    pub updated_at: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostStatistics {
    /// Whether this edge's inference configuration has LLM analysts (the workers' may).
    pub llm_configured: bool,
    /// The configured models (rule models cost nothing).
    pub models: Vec<String>,
    /// Summed over every process.
    pub analysts: Vec<AnalystCost>,
    pub total_requests: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub total_cost_usd: f64,
    /// Every process that ran analysts, with its cost.
    pub processes: Vec<ProcessCost>,
    /// Where the numbers come from.
    pub source: &'static str,
}

impl AiState {
    /// This process's `tradeflow_llm_*` metric families: the process registry's (the
    /// pipeline's analysts under `tradeflow up`) and those of the edge's own analysts.
    pub fn llm_families(&self, state: &AppState) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = state.registry.gather();
        if let Some(Ok(engine)) = self.engine.get()
            && let Some(r) = engine.private_registry()
        {
            families.extend(r.gather());
        }
        families.retain(|f| f.name().starts_with("tradeflow_llm_"));
        families
    }
}

/// LLM requests, tokens and cost per analyst, summed over every process that runs analysts
/// (`worker inference`, `tradeflow up`, the edges): each publishes its counters to Redis every
/// 5 s (see `llm_usage`); this process's own are read live. 503 when Redis cannot be read:
/// a total without the workers would pass for the whole.
#[utoipa::path(get, path = "/ai/cost/statistics", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = CostStatistics), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn cost_statistics(
    State(state): State<AppState>,
    _who: Viewer,
) -> Result<Json<CostStatistics>, ApiError> {
    use crate::llm_usage::{self, AnalystUsage, ProcessUsage};
    let engine = state.ai.engine(&state)?;
    let own = ProcessUsage {
        process: llm_usage::process_id().into(),
        updated_at: tradeflow_core::time::now_ms(),
        analysts: llm_usage::collect(&state.ai.llm_families(&state)),
    };
    let mut usages = llm_usage::read_all(&state.bus).await.map_err(|e| ApiError::unavailable("redis", e))?;
    usages.retain(|u| u.process != own.process);
    let mut by: BTreeMap<String, AnalystUsage> =
        engine.analyst_names().into_iter().map(|n| (n.to_string(), AnalystUsage::default())).collect();
    let mut processes = Vec::new();
    for (u, this_process) in usages.iter().map(|u| (u, false)).chain(std::iter::once((&own, true))) {
        for (name, a) in &u.analysts {
            by.entry(name.clone()).or_default().add(a);
        }
        if this_process && u.analysts.is_empty() {
            continue;
        }
        processes.push(ProcessCost {
            process: u.process.clone(),
            this_process,
            updated_at: u.updated_at,
            cost_usd: u.cost_usd(),
        });
    }
    let analysts: Vec<AnalystCost> = by
        .into_iter()
        .map(|(analyst, a)| AnalystCost {
            mean_request_seconds: (a.http_requests > 0).then(|| a.request_seconds_sum / a.http_requests as f64),
            analyst,
            requests: a.requests,
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cost_usd: a.cost_usd,
            http_requests: a.http_requests,
        })
        .collect();
    Ok(Json(CostStatistics {
        llm_configured: !engine.config().analysts.is_empty(),
        models: engine.names(),
        total_requests: analysts.iter().flat_map(|a| a.requests.values()).sum(),
        total_input_tokens: analysts.iter().map(|a| a.input_tokens).sum(),
        total_output_tokens: analysts.iter().map(|a| a.output_tokens).sum(),
        total_cost_usd: analysts.iter().map(|a| a.cost_usd).sum(),
        analysts,
        processes,
        source: "the tradeflow_llm_* counters of every process that runs analysts (worker inference, tradeflow up, \
                 the edges), published to Redis every 5 s; this process's read live",
    }))
}
