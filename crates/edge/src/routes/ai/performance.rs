//! `GET /ai/performance`, `POST /ai/feedback`: how the models did, measured, and what users
//! rated them.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(performance)).routes(routes!(feedback))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Signals recorded in the last `days` days, 1 to 365 (default 30).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<i64>,
}

/// Realised outcomes of directional calls.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Outcomes {
    /// Calls whose next bar is stored.
    pub evaluated: i64,
    /// Of them, those the next bar moved their way.
    pub hits: i64,
    pub hit_rate: Option<f64>,
    /// Mean next-bar return in the call's direction (a fraction: 0.01 is 1 %).
    pub mean_return: Option<f64>,
}

impl From<signals::Outcomes> for Outcomes {
    fn from(o: signals::Outcomes) -> Self {
        Outcomes { evaluated: o.evaluated, hits: o.hits, hit_rate: o.hit_rate, mean_return: o.mean_return }
    }
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FeedbackSummary {
    pub count: i64,
    pub mean_rating: Option<f64>,
    /// Ratings of 4 or 5.
    pub positive: i64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ModelPerformance {
    pub model: String,
    pub kind: String,
    /// One of the configured models.
    pub configured: bool,
    /// Signals recorded in the window.
    pub signals: i64,
    pub long: i64,
    pub short: i64,
    pub hold: i64,
    pub errors: i64,
    pub mean_confidence: Option<f64>,
    pub mean_latency_us: Option<f64>,
    /// Long and short calls together.
    pub outcomes: Outcomes,
    pub long_outcomes: Outcomes,
    pub short_outcomes: Outcomes,
    pub feedback: FeedbackSummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub days: i64,
    /// Signals recorded since (epoch ms).
    pub since: i64,
    pub method: &'static str,
    pub models: Vec<ModelPerformance>,
}

pub(super) const DAY_MS: i64 = 86_400_000;

pub(super) fn perf_entry<'a>(
    map: &'a mut BTreeMap<String, ModelPerformance>,
    model: &str,
    kind: &str,
) -> &'a mut ModelPerformance {
    map.entry(model.to_string()).or_insert_with(|| ModelPerformance {
        model: model.into(),
        kind: kind.into(),
        ..ModelPerformance::default()
    })
}

/// Per model, measured: signal counts, realised next-bar outcomes of its long/short calls,
/// and feedback ratings.
#[utoipa::path(get, path = "/ai/performance", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    params(DaysQuery),
    responses(
        (status = 200, body = Performance),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn performance(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<DaysQuery>,
) -> Result<Json<Performance>, ApiError> {
    let days = check_limit("days", q.days, 30, 365)?;
    let since = tradeflow_core::time::now_ms() - days * DAY_MS;
    let engine = state.ai.engine(&state)?;
    let store = state.store()?;
    let configured = engine.names();
    let mut by_model: BTreeMap<String, ModelPerformance> = configured
        .iter()
        .map(|m| {
            let p = ModelPerformance {
                model: m.clone(),
                kind: engine.kind_of(m).into(),
                configured: true,
                ..ModelPerformance::default()
            };
            (m.clone(), p)
        })
        .collect();
    // Per model: confidence and latency (means of groups of rows), and realised outcomes.
    let mut means: HashMap<String, (signals::PooledMean, signals::PooledMean)> = HashMap::new();
    let mut outcomes: HashMap<String, [signals::Outcomes; 3]> = HashMap::new();
    for c in store.signal_counts(since).await? {
        let p = perf_entry(&mut by_model, &c.model, &c.model_kind);
        p.kind = c.model_kind.clone();
        p.signals += c.count;
        match c.action.as_str() {
            "long" => p.long += c.count,
            "short" => p.short += c.count,
            _ => p.hold += c.count,
        }
        if c.status != "ok" {
            p.errors += c.count;
        }
        let m = means.entry(c.model.clone()).or_default();
        m.0.add(c.mean_confidence, c.count);
        m.1.add(c.mean_latency_us, c.count);
    }
    for (model, (conf, lat)) in means {
        if let Some(p) = by_model.get_mut(&model) {
            p.mean_confidence = conf.mean();
            p.mean_latency_us = lat.mean();
        }
    }
    for o in store.signal_outcomes(since).await? {
        perf_entry(&mut by_model, &o.model, "rule");
        // All calls, long calls, short calls.
        let [all, long, short] = outcomes.entry(o.model.clone()).or_default();
        all.add(o.signals, o.hits, o.return_sum);
        match o.action.as_str() {
            "long" => long.add(o.signals, o.hits, o.return_sum),
            _ => short.add(o.signals, o.hits, o.return_sum),
        }
    }
    for (model, [all, long, short]) in outcomes {
        if let Some(p) = by_model.get_mut(&model) {
            (p.outcomes, p.long_outcomes, p.short_outcomes) = (all.into(), long.into(), short.into());
        }
    }
    for f in store.ai_feedback_stats().await? {
        let p = perf_entry(&mut by_model, &f.model, engine.kind_of(&f.model));
        p.feedback = FeedbackSummary { count: f.count, mean_rating: Some(f.mean_rating), positive: f.positive };
    }
    Ok(Json(Performance {
        days,
        since,
        method: "for each ok long/short signal recorded since `since`, the next stored bar of its series: a hit when \
                 it closed above (long) or below (short) the signal's bar close; return = the close-to-close change \
                 in the call's direction. Feedback: every rating stored",
        models: by_model.into_values().collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// A configured model (or one the pipeline has run).
    pub model: String,
    /// 1 (useless) to 5 (excellent).
    pub rating: i64,
    /// An analysis of `/ai/analyze` or `/ai/history` this is about.
    pub analysis_id: Option<String>,
    /// A stored signal this is about.
    pub signal_id: Option<String>,
    pub symbol: Option<String>,
    /// At most 2000 characters.
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackAck {
    pub id: String,
    pub model: String,
    pub rating: i64,
    pub created_at: i64,
}

pub(super) fn body_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_body", message).with_details(json!({ "field": field }))
}

/// Rates a model (1–5), optionally about one analysis or signal; counted in `/ai/performance`.
#[utoipa::path(post, path = "/ai/feedback", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = FeedbackRequest,
    responses(
        (status = 201, body = FeedbackAck),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn feedback(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, Json<FeedbackAck>), ApiError> {
    let engine = state.ai.engine(&state)?;
    let mut known = engine.names();
    known.extend(state.live.models().into_iter().map(|m| m.model).filter(|m| !engine.names().contains(m)));
    if !known.contains(&req.model) {
        return Err(ApiError::unprocessable("unknown_model", format!("model {:?} is not known", req.model))
            .with_details(json!({ "field": "model", "known": known })));
    }
    if !(1..=5).contains(&req.rating) {
        return Err(body_error("rating", format!("rating: expected 1 to 5, got {}", req.rating)));
    }
    if let Some(s) = &req.symbol
        && let Some(problem) = symbol_problem(s)
    {
        return Err(body_error("symbol", problem));
    }
    if req.comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(body_error("comment", "comment: at most 2000 characters"));
    }
    for (field, id) in [("analysis_id", &req.analysis_id), ("signal_id", &req.signal_id)] {
        if id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 300) {
            return Err(body_error(field, format!("{field}: 1 to 300 characters")));
        }
    }
    let store = state.store()?;
    if let Some(id) = &req.analysis_id
        && !store.ai_analysis_exists(id).await?
    {
        return Err(ApiError::not_found("analysis", id));
    }
    if let Some(id) = &req.signal_id
        && !store.signal_exists(id).await?
    {
        return Err(ApiError::not_found("signal", id));
    }
    let caller = meta.caller(who);
    let created_at = tradeflow_core::time::now_ms();
    let row = AiFeedbackRow {
        id: format!("fb-{}", uuid::Uuid::new_v4()),
        model: req.model,
        rating: req.rating,
        analysis_id: req.analysis_id,
        signal_id: req.signal_id,
        symbol: req.symbol,
        comment: req.comment,
        actor: caller.identity.subject.clone(),
        created_at,
    };
    store.insert_ai_feedback(&row).await?;
    let details = json!({ "id": row.id, "model": row.model, "rating": row.rating, "analysis_id": row.analysis_id, "signal_id": row.signal_id });
    state.audit(&caller, "ai_feedback", "/api/v1/ai/feedback", "ok", details).await?;
    Ok((StatusCode::CREATED, Json(FeedbackAck { id: row.id, model: row.model, rating: row.rating, created_at })))
}
