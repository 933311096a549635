//! `GET /ai/info`, `GET /ai/strategies`, `GET /models`: what the configured models are (in the
//! inference crate's words) and what the edge saw of them.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(info)).routes(routes!(strategies)).routes(routes!(models))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
    /// `rule`, `ml` or `llm`.
    pub kind: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalystInfo {
    pub name: String,
    /// `openai` or `anthropic`.
    pub dialect: String,
    pub model: String,
    pub timeout_ms: u64,
    pub cache_ttl_s: u64,
    pub max_tokens: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AiInfo {
    /// The configured models: rule models, then LLM analysts.
    pub models: Vec<ModelInfo>,
    pub analysts: Vec<AnalystInfo>,
    pub llm_configured: bool,
    /// How long analyses are cached.
    pub cache_ttl_s: u64,
    /// Bars an analysis needs at least.
    pub warm_up_bars: usize,
    /// Stored bars an analysis of a symbol runs over at most.
    pub history_bars: i64,
    pub max_request_candles: usize,
    pub intervals: Vec<&'static str>,
    /// Rule strategy parameters (`[rules]`).
    #[schema(value_type = Object)]
    pub rules: Value,
    /// Market-condition thresholds (`[condition]`).
    #[schema(value_type = Object)]
    pub condition: Value,
}

/// The configured models, the LLM analysts, cache and warm-up, the rule and condition parameters.
#[utoipa::path(get, path = "/ai/info", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = AiInfo), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn info(State(state): State<AppState>, _who: Viewer) -> Result<Json<AiInfo>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let mut models: Vec<ModelInfo> = engine
        .rule_names()
        .into_iter()
        .map(|name| ModelInfo {
            name: name.into(),
            kind: "rule".into(),
            description: ModelSpec::parse(name).map_or("", strategy::model_text).into(),
        })
        .collect();
    let analysts: Vec<AnalystInfo> = engine
        .config()
        .analysts
        .iter()
        .map(|a| {
            let c = a.config();
            AnalystInfo {
                name: c.name.clone(),
                dialect: c.dialect.clone(),
                model: c.model.clone(),
                timeout_ms: c.timeout_ms,
                cache_ttl_s: c.cache_ttl_s,
                max_tokens: c.max_tokens,
            }
        })
        .collect();
    models.extend(engine.config().analysts.iter().map(|a| ModelInfo {
        name: a.name().into(),
        kind: "llm".into(),
        description: format!("LLM analyst {}", a.describe()),
    }));
    Ok(Json(AiInfo {
        models,
        llm_configured: !analysts.is_empty(),
        analysts,
        cache_ttl_s: state.config.ai_cache_ttl_s,
        warm_up_bars: WARM_UP_BARS,
        history_bars: HISTORY_BARS,
        max_request_candles: MAX_REQUEST_CANDLES,
        intervals: known_intervals(),
        rules: serde_json::to_value(&engine.config().rules).unwrap_or(Value::Null),
        condition: serde_json::to_value(&engine.config().condition).unwrap_or(Value::Null),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyInfo {
    pub name: String,
    pub description: String,
    /// The indicator columns it reads.
    pub indicators: Vec<&'static str>,
    /// Its parameters and their configured values.
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<&'static str, Value>,
    /// Runs as a model of its own (`--models`).
    pub runs_as_model: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Strategies {
    pub strategies: Vec<StrategyInfo>,
    /// The `technical` composite: every strategy votes.
    pub composite: ModelInfo,
    pub composite_configured: bool,
}

/// The rule strategies: what each reads and does, their parameters, which run as models.
#[utoipa::path(get, path = "/ai/strategies", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Strategies), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn strategies(State(state): State<AppState>, _who: Viewer) -> Result<Json<Strategies>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let names = engine.rule_names();
    let strategies = Strategy::ALL
        .into_iter()
        .map(|s| {
            let text = strategy::text(s);
            StrategyInfo {
                name: s.name().into(),
                description: text.description.into(),
                indicators: text.indicators.to_vec(),
                parameters: strategy::parameter_values(s, &engine.config().rules),
                runs_as_model: names.contains(&s.name()),
            }
        })
        .collect();
    Ok(Json(Strategies {
        strategies,
        composite: ModelInfo {
            name: "technical".into(),
            kind: "rule".into(),
            description: strategy::TECHNICAL_TEXT.into(),
        },
        composite_configured: names.contains(&"technical"),
    }))
}

// ---------------------------------------------------------------------------------------------
// Models.

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatus {
    pub name: String,
    /// `rule`, `ml` or `llm`.
    pub kind: String,
    /// One of the configured models (false: seen on the tap but not configured here).
    pub configured: bool,
    /// A signal of it was produced within `online_window_ms` (see the module docs).
    pub online: bool,
    pub online_window_ms: i64,
    /// Signals (and error signals) seen since the edge started.
    pub signals: u64,
    pub errors: u64,
    /// The last prediction: symbol, action, confidence, latency, when.
    pub last_symbol: Option<String>,
    pub last_action: Option<String>,
    pub last_confidence: Option<f64>,
    pub last_latency_us: Option<u64>,
    pub mean_latency_us: f64,
    pub last_signal_at: Option<i64>,
    pub last_error: Option<String>,
    /// A learned model's (`ml:NAME`) deployed version in the registry; `null` for the others
    /// and without a database.
    pub deployed_version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    pub count: usize,
    pub online: usize,
    pub models: Vec<ModelStatus>,
}

/// Every configured model: online, latency, last prediction and confidence.
#[utoipa::path(get, path = "/models", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Models), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn models(State(state): State<AppState>, _who: Viewer) -> Result<Json<Models>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let now = tradeflow_core::time::now_ms();
    let seen: BTreeMap<String, crate::live::ModelView> =
        state.live.models().into_iter().map(|m| (m.model.clone(), m)).collect();
    let mut configured = engine.names();
    // Learned models are served by the workers, not the edge's engine: the configured ones
    // come from `--models`.
    configured.extend(state.pipeline.models.iter().filter(|m| m.starts_with("ml:")).cloned());
    let deployed: BTreeMap<String, i64> = match state.store() {
        Ok(store) => store.deployed_models().await?.into_iter().collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut names = configured.clone();
    names.extend(seen.keys().filter(|k| !configured.contains(k)).cloned());
    let models: Vec<ModelStatus> = names
        .into_iter()
        .map(|name| {
            let v = seen.get(&name).cloned().unwrap_or_default();
            let step = v
                .last_symbol
                .as_deref()
                .and_then(|s| state.live.price(s))
                .and_then(|p| p.interval.parse::<Interval>().ok())
                .map_or(3_600_000, Interval::millis);
            let window = 2 * step;
            ModelStatus {
                kind: match (v.kind.is_empty(), name.starts_with("ml:")) {
                    (false, _) => v.kind.clone(),
                    (true, true) => "ml".into(),
                    (true, false) => engine.kind_of(&name).into(),
                },
                configured: configured.contains(&name),
                online: v.last_signal_at.is_some_and(|t| now - t <= window),
                online_window_ms: window,
                signals: v.signals,
                errors: v.errors,
                last_symbol: v.last_symbol,
                last_action: v.last_action,
                last_confidence: v.last_confidence,
                last_latency_us: v.last_latency_us,
                mean_latency_us: v.mean_latency_us,
                last_signal_at: v.last_signal_at,
                last_error: v.last_error,
                deployed_version: name.strip_prefix("ml:").and_then(|n| deployed.get(n).copied()),
                name,
            }
        })
        .collect();
    Ok(Json(Models { count: models.len(), online: models.iter().filter(|m| m.online).count(), models }))
}
