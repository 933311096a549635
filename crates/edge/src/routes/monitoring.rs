//! Monitoring: the pipeline's health and its alerts.
//!
//! `GET /monitoring/health` looks at Redis, the database and each stage: its (stream, group)
//! pairs, their live workers (fleet members whose heartbeat expiry, a score in Redis server
//! time, is still ahead of Redis's `TIME`), lag and pending entries. Overall:
//! - `unhealthy` (503, same body) when Redis or the database does not answer, or a stage has
//!   work waiting (lag, pending, or a lag Redis cannot tell) on a stream where it has no live
//!   worker;
//! - `degraded` when any stream holds dead letters, a stage's lag exceeds [`LAG_DEGRADED`]
//!   entries, or a stage has no live worker on one of its streams while nothing waits there;
//! - `healthy` otherwise.
//!
//! Stages: inference (md.candles/inference), ensemble (inf.signals/ensemble), risk
//! (ens.decisions/risk), exec (risk.orders/exec), audit (the `audit` group on md.candles,
//! inf.signals, ens.decisions, risk.orders, exec.fills, audit.events, ctl.commands). Pairs the
//! topology does not declare are left out.
//!
//! Alerts (`GET /monitoring/alerts`) come from two sources, merged newest first:
//! - `audit`: rows of the SQL `system_events` table with severity warning, error or critical
//!   (candles refused by ingestion, account alerts from risk: circuit breaker, cooldown,
//!   emergency stop); the id is the row's id;
//! - `sys.events`: entries of the `sys.events` stream whose payload has a `severity` of
//!   warning, error or critical, or whose kind names an alert (`*alert*`, then `warning`);
//!   heartbeats and other entries are not alerts. The id is `sys.events:<partition>/<entry id>`.
//!
//! Each source contributes its newest [`ALERT_WINDOW`] alerts; older ones are not listed.
//! Their status (`open` unless set) is kept in the Redis hash `<namespace>:{edge}:alerts` (alert
//! id → JSON), so it survives edge restarts: `POST /monitoring/alerts/{id}/acknowledge` (open →
//! acknowledged) and `/resolve` (open or acknowledged → resolved), 409 otherwise. Ids may hold
//! `/`: percent-encode them in the path.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tradeflow_audit::query::monitoring::{ALERT_SEVERITIES, AlertEvent};
use tradeflow_bus::inspect::{self, StreamCounters, StreamHealth};
use tradeflow_bus::reply::{self, EntryId, RawEntry};
use tradeflow_bus::{BusError, Envelope};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Trader, Viewer};
use crate::error::{ApiError, Json, KeepBody, Page, Path, Query};
use crate::routes::health::{Check, check_database, check_redis};
use crate::state::{AppState, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(alerts))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
}

/// The bus's threshold (about a minute of the whole demo pipeline's output, far more than a
/// healthy consumer ever leaves behind), for stages as for streams.
pub use tradeflow_bus::inspect::LAG_DEGRADED;

/// How often `run_background` samples every stream's counters for `/streams/metrics`.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples are kept this long (the longest metrics window is 600 s).
const KEEP_SAMPLES: Duration = Duration::from_secs(660);

/// Alerts taken from each source, newest first.
pub const ALERT_WINDOW: usize = 5000;

/// Alert statuses.
pub const ALERT_STATUSES: [&str; 3] = ["open", "acknowledged", "resolved"];

/// State of the monitoring routes: stream counter samples for `/streams/metrics`.
#[derive(Debug, Default)]
pub struct MonitorState {
    samples: Mutex<BTreeMap<String, VecDeque<(Instant, StreamCounters)>>>,
}

impl MonitorState {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VecDeque<(Instant, StreamCounters)>>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a sample of `stream` taken at `at`, forgetting those older than needed.
    pub fn record(&self, stream: &str, at: Instant, counters: StreamCounters) {
        let mut all = self.lock();
        let q = all.entry(stream.to_string()).or_default();
        q.push_back((at, counters));
        while q.front().is_some_and(|(t, _)| at.duration_since(*t) > KEEP_SAMPLES) {
            q.pop_front();
        }
    }

    /// The oldest sample of `stream` at most `window` before `now`: what a rate over the
    /// window is measured against.
    pub fn base_sample(&self, stream: &str, window: Duration, now: Instant) -> Option<(Instant, StreamCounters)> {
        self.lock().get(stream)?.iter().find(|(t, _)| now.saturating_duration_since(*t) <= window).copied()
    }
}

/// Samples every stream's counters every [`SAMPLE_EVERY`] until `stop`.
pub async fn run_background(state: AppState, stop: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = every.tick() => {} }
        for name in state.bus.topology().streams.keys() {
            match inspect::stream_counters(&state.bus, name).await {
                Ok(c) => state.monitor.record(name, Instant::now(), c),
                Err(e) => {
                    tracing::debug!(stream = %name, error = %e, "stream sample failed");
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health.

/// One (stream, group) pair of a stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageStream {
    pub stream: String,
    pub group: String,
    /// Live fleet members consuming the pair.
    pub live_workers: Vec<String>,
    pub lag: u64,
    /// False when Redis could not tell the lag of some partition.
    pub lag_known: bool,
    pub pending: u64,
    pub dlq_messages: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StageHealth {
    pub stage: String,
    /// `ok`, `lagging` (lag above the threshold), `no_workers` (none live, nothing waiting)
    /// or `down` (none live while work waits).
    pub status: &'static str,
    /// Live workers on the stage's least covered stream.
    pub live_workers: usize,
    /// Every live worker name, across the stage's streams.
    pub workers: Vec<String>,
    pub lag: u64,
    pub pending: u64,
    pub dlq_messages: u64,
    pub streams: Vec<StageStream>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Thresholds {
    /// Lag (entries) above which a stage is `lagging` and the pipeline `degraded`.
    pub lag_degraded: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MonitoringHealth {
    /// `healthy`, `degraded` or `unhealthy` (then the status code is 503).
    pub status: &'static str,
    /// Epoch ms.
    pub checked_at: i64,
    pub redis: Check,
    pub database: Check,
    pub stages: Vec<StageHealth>,
    /// Sums over the stages.
    pub lag: u64,
    pub pending: u64,
    /// Dead letters over every stream.
    pub dlq_messages: u64,
    /// Why the status is not `healthy`.
    pub reasons: Vec<String>,
    pub thresholds: Thresholds,
}

async fn stages(state: &AppState) -> Result<(Vec<StageHealth>, u64), BusError> {
    let bus = &state.bus;
    let mut streams: BTreeMap<String, StreamHealth> = BTreeMap::new();
    for name in bus.topology().streams.keys() {
        streams.insert(name.clone(), inspect::stream_health(bus, name).await?);
    }
    let dlq_total = streams.values().map(|h| h.dlq_length).sum();
    let mut out = Vec::new();
    // Which stage reads what is streams.toml's to say (a stage's group bears its name).
    for (stage, read) in inspect::stage_streams(bus.topology()) {
        let pairs: Vec<(&str, &str)> = read.into_iter().map(|s| (s, stage)).collect();
        let mut s = StageHealth {
            stage: stage.to_string(),
            status: "ok",
            live_workers: usize::MAX,
            workers: Vec::new(),
            lag: 0,
            pending: 0,
            dlq_messages: 0,
            streams: Vec::new(),
        };
        let mut down = false;
        for (stream, group) in pairs {
            let Some(h) = streams.get(stream) else { continue };
            if bus.stream_group(stream, group).is_err() {
                continue;
            }
            let live = tradeflow_bus::fleet::live_members(bus, stream, group).await?;
            let g = inspect::group_summary(h, group, Vec::new());
            let (lag, lag_known, pending) = (g.lag, g.lag_known, g.pending);
            if live.is_empty() && (lag > 0 || pending > 0 || !lag_known) {
                down = true;
            }
            s.live_workers = s.live_workers.min(live.len());
            s.workers.extend(live.iter().cloned());
            s.lag += lag;
            s.pending += pending;
            s.dlq_messages += h.dlq_length;
            s.streams.push(StageStream {
                stream: stream.to_string(),
                group: group.to_string(),
                live_workers: live,
                lag,
                lag_known,
                pending,
                dlq_messages: h.dlq_length,
            });
        }
        if s.streams.is_empty() {
            continue;
        }
        s.workers.sort();
        s.workers.dedup();
        s.status = if down {
            "down"
        } else if s.live_workers == 0 {
            "no_workers"
        } else if s.lag > LAG_DEGRADED {
            "lagging"
        } else {
            "ok"
        };
        out.push(s);
    }
    Ok((out, dlq_total))
}

/// The pipeline's health: Redis, the database, each stage's live workers and lag, dead
/// letters. 503 (same body) when `unhealthy`.
#[utoipa::path(get, path = "/monitoring/health", tag = "monitoring", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = MonitoringHealth),
    (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = MonitoringHealth, description = "unhealthy")))]
async fn health(State(state): State<AppState>, _who: Viewer) -> Response {
    let (redis, database) = tokio::join!(check_redis(&state), check_database(&state));
    let mut reasons = Vec::new();
    let mut unhealthy = false;
    if let Some(e) = &redis.error {
        reasons.push(format!("redis: {e}"));
        unhealthy = true;
    }
    if let Some(e) = &database.error {
        reasons.push(format!("database: {e}"));
        unhealthy = true;
    }
    let (stages, dlq_messages) = if redis.ok {
        match tokio::time::timeout(Duration::from_secs(5), stages(&state)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                reasons.push(format!("redis: {e}"));
                unhealthy = true;
                (Vec::new(), 0)
            }
            Err(_) => {
                reasons.push("redis: stream health took more than 5 s".into());
                unhealthy = true;
                (Vec::new(), 0)
            }
        }
    } else {
        (Vec::new(), 0)
    };
    let mut degraded = false;
    for s in &stages {
        match s.status {
            "down" => {
                unhealthy = true;
                reasons.push(format!(
                    "{}: no live worker while work waits (lag {}, pending {})",
                    s.stage, s.lag, s.pending
                ))
            }
            "no_workers" => {
                degraded = true;
                reasons.push(format!("{}: no live worker", s.stage));
            }
            "lagging" => {
                degraded = true;
                reasons.push(format!("{}: lag {} above {LAG_DEGRADED}", s.stage, s.lag));
            }
            _ => {}
        }
    }
    if dlq_messages > 0 {
        degraded = true;
        reasons.push(format!("{dlq_messages} dead letter(s)"));
    }
    let status = if unhealthy {
        "unhealthy"
    } else if degraded {
        "degraded"
    } else {
        "healthy"
    };
    let body = MonitoringHealth {
        status,
        checked_at: tradeflow_core::time::now_ms(),
        redis,
        database,
        lag: stages.iter().map(|s| s.lag).sum(),
        pending: stages.iter().map(|s| s.pending).sum(),
        dlq_messages,
        stages,
        reasons,
        thresholds: Thresholds { lag_degraded: LAG_DEGRADED },
    };
    let code = if unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let mut response = (code, axum::Json(body)).into_response();
    // An unhealthy pipeline is the answer, not an error of the request: keep its shape.
    response.extensions_mut().insert(KeepBody);
    response
}

// ---------------------------------------------------------------------------------------------
// Alerts.

/// What an operator did to an alert, kept in Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AlertState {
    status: String,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<i64>,
    resolved_by: Option<String>,
    resolved_at: Option<i64>,
    note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    /// Row id (`audit`) or `sys.events:<partition>/<entry id>`.
    pub id: String,
    /// `audit` (SQL system_events) or `sys.events`.
    pub source: &'static str,
    pub kind: String,
    pub service: String,
    /// `warning`, `error` or `critical`.
    pub severity: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
    /// Epoch ms.
    pub time: i64,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
}

impl Alert {
    fn with_state(mut self, s: Option<AlertState>) -> Alert {
        if let Some(s) = s {
            self.status = s.status;
            self.acknowledged_by = s.acknowledged_by;
            self.acknowledged_at = s.acknowledged_at;
            self.resolved_by = s.resolved_by;
            self.resolved_at = s.resolved_at;
            self.note = s.note;
        }
        self
    }

    fn state(&self) -> AlertState {
        AlertState {
            status: self.status.clone(),
            acknowledged_by: self.acknowledged_by.clone(),
            acknowledged_at: self.acknowledged_at,
            resolved_by: self.resolved_by.clone(),
            resolved_at: self.resolved_at,
            note: self.note.clone(),
        }
    }
}

fn bare(id: String, source: &'static str, kind: String, service: String, severity: String) -> Alert {
    Alert {
        id,
        source,
        kind,
        service,
        severity,
        message: String::new(),
        details: Value::Null,
        time: 0,
        status: "open".into(),
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        note: None,
    }
}

fn from_event(e: AlertEvent) -> Alert {
    let mut a = bare(e.id, "audit", e.kind, e.service, e.severity);
    a.message = e.message;
    a.details = serde_json::from_str(&e.details).unwrap_or(Value::String(e.details));
    a.time = e.time;
    a
}

const SYS: &str = "sys.events";

/// The alerts an entry of sys.events carries. Id `sys.events:<partition>/<entry id>`, with
/// `.<index>` appended for the messages of a packed entry.
fn from_sys_entry(partition: u32, e: &RawEntry) -> Vec<Alert> {
    let messages = tradeflow_bus::pack::messages(e).unwrap_or_default();
    let packed = messages.len() > 1;
    let mut out = Vec::new();
    for (i, bytes) in messages.into_iter().enumerate() {
        let id = if packed { format!("{SYS}:{partition}/{}.{i}", e.id) } else { format!("{SYS}:{partition}/{}", e.id) };
        out.extend(alert_of(id, bytes));
    }
    out
}

/// The alert one message of sys.events is, if it is one.
fn alert_of(id: String, bytes: &[u8]) -> Option<Alert> {
    let env = Envelope::decode(bytes).ok()?;
    let payload = env.payload_json();
    let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_string);
    let severity = match text("severity").map(|s| s.to_ascii_lowercase()) {
        Some(s) if ALERT_SEVERITIES.contains(&s.as_str()) => s,
        Some(_) => return None,
        None if env.kind.contains("alert") => "warning".into(),
        None => return None,
    };
    let mut a = bare(
        id,
        SYS,
        text("kind").unwrap_or_else(|| env.kind.clone()),
        text("service").unwrap_or_else(|| env.producer.clone()),
        severity,
    );
    a.message = text("message").unwrap_or_else(|| env.kind.clone());
    a.time = payload.get("time").and_then(Value::as_i64).unwrap_or(env.produced_at);
    a.details = payload;
    Some(a)
}

fn redis_err(op: &'static str) -> impl FnOnce(redis::RedisError) -> ApiError {
    move |source| BusError::Redis { op, source }.into()
}

/// The newest [`ALERT_WINDOW`] alerts of sys.events, of `severity` when given.
async fn sys_alerts(state: &AppState, severity: Option<&str>) -> Result<Vec<Alert>, ApiError> {
    let Ok(spec) = state.bus.topology().stream(SYS) else { return Ok(Vec::new()) };
    let mut conn = state.bus.conn();
    let mut out = Vec::new();
    for p in 0..spec.partitions {
        let v: redis::Value = redis::cmd("XREVRANGE")
            .arg(state.bus.keys().partition(SYS, p))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(ALERT_WINDOW)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XREVRANGE"))?;
        for e in reply::entries("XREVRANGE", &v)? {
            out.extend(from_sys_entry(p, &e).into_iter().filter(|a| severity.is_none_or(|s| a.severity == s)));
        }
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    out.truncate(ALERT_WINDOW);
    Ok(out)
}

fn alerts_key(state: &AppState) -> String {
    format!("{}:{{edge}}:alerts", state.bus.keys().namespace())
}

/// The stored states of `ids`, in order (raw JSON text, `None` when never set).
async fn raw_states(state: &AppState, ids: &[&str]) -> Result<Vec<Option<String>>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = state.bus.conn();
    redis::cmd("HMGET").arg(alerts_key(state)).arg(ids).query_async(&mut conn).await.map_err(redis_err("HMGET"))
}

fn parse_state(raw: Option<String>) -> Option<AlertState> {
    raw.and_then(|r| serde_json::from_str(&r).ok())
}

/// Looks one alert up by id, with its state; `None` when there is no such alert.
async fn find_alert(state: &AppState, id: &str) -> Result<Option<(Alert, Option<String>)>, ApiError> {
    let alert = if let Some(rest) = id.strip_prefix(&format!("{SYS}:")) {
        let Some((p, entry)) = rest.split_once('/') else { return Ok(None) };
        let entry = entry.split_once('.').map_or(entry, |(entry, _)| entry);
        let (Ok(p), Some(entry)) = (p.parse::<u32>(), EntryId::parse(entry)) else { return Ok(None) };
        let Ok(spec) = state.bus.topology().stream(SYS) else { return Ok(None) };
        if p >= spec.partitions {
            return Ok(None);
        }
        let mut conn = state.bus.conn();
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(state.bus.keys().partition(SYS, p))
            .arg(entry.to_string())
            .arg(entry.to_string())
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XRANGE"))?;
        let found = reply::entries("XRANGE", &v)?.first().map(|e| from_sys_entry(p, e)).unwrap_or_default();
        found.into_iter().find(|a| a.id == id)
    } else {
        state.store()?.alert_event(id).await?.map(from_event)
    };
    let Some(alert) = alert else { return Ok(None) };
    let raw = raw_states(state, &[id]).await?.pop().flatten();
    Ok(Some((alert.with_state(parse_state(raw.clone())), raw)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `warning`, `error` or `critical`.
    #[param(pattern = "^(warning|error|critical)$")]
    pub severity: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    #[param(pattern = "^(open|acknowledged|resolved)$")]
    pub status: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// 0 or more.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Alerts matching the filters (within each source's newest 5000).
    pub total: usize,
    pub limit: i64,
    pub offset: i64,
    /// Newest first.
    pub alerts: Vec<Alert>,
}

fn check_choice(field: &'static str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(ApiError::bad_request("invalid_query", format!("{field}: expected one of {allowed:?}, got {v:?}"))
                .with_details(json!({ "field": field, "allowed": allowed, "got": v })))
        }
        _ => Ok(()),
    }
}

/// Alerts, newest first: warning/error/critical system events of the audit store and alerts
/// on sys.events, each with its status. Filters: `severity`, `status`; pagination.
#[utoipa::path(get, path = "/monitoring/alerts", tag = "monitoring", security(("bearer" = []), ("api_key" = [])),
    params(AlertQuery),
    responses(
        (status = 200, body = AlertList),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn alerts(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    check_choice("severity", q.severity.as_deref(), &ALERT_SEVERITIES)?;
    check_choice("status", q.status.as_deref(), &ALERT_STATUSES)?;
    let (limit, offset) = Page { limit: q.limit, offset: q.offset }.resolve(100)?;
    let store = state.store()?;
    let severity = q.severity.as_deref();
    let mut all: Vec<Alert> =
        store.alert_events(severity, ALERT_WINDOW as i64).await?.into_iter().map(from_event).collect();
    all.extend(sys_alerts(&state, severity).await?);
    all.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    let mut states = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        states.extend(raw_states(&state, chunk).await?);
    }
    let matching: Vec<Alert> = all
        .into_iter()
        .zip(states)
        .map(|(a, s)| a.with_state(parse_state(s)))
        .filter(|a| q.status.as_deref().is_none_or(|s| a.status == s))
        .collect();
    let total = matching.len();
    let alerts = matching.into_iter().skip(offset as usize).take(limit as usize).collect();
    Ok(Json(AlertList { total, limit, offset, alerts }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    /// A note kept with the alert (at most 1000 characters).
    pub note: Option<String>,
}

/// Sets an alert's state if it is still `expected` (raw JSON, `None`: never set).
/// KEYS: the hash; ARGV: id, expected ('' for none), new.
const CAS_LUA: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#;

async fn transition(
    state: &AppState,
    who: crate::auth::Identity,
    meta: RequestMeta,
    id: String,
    body: Option<Json<AlertAction>>,
    to: &'static str,
) -> Result<Json<Alert>, ApiError> {
    let note = body.and_then(|Json(b)| b.note);
    if let Some(n) = &note
        && n.chars().count() > 1000
    {
        return Err(ApiError::unprocessable("invalid_body", "note: at most 1000 characters")
            .with_details(json!({ "field": "note", "max": 1000 })));
    }
    let caller = meta.caller(who);
    let now = tradeflow_core::time::now_ms();
    // Optimistic: another caller changing the same alert in between makes us look again.
    for _ in 0..3 {
        let Some((mut alert, raw)) = find_alert(state, &id).await? else {
            return Err(ApiError::not_found("alert", &id));
        };
        let allowed = match to {
            "acknowledged" => alert.status == "open",
            _ => alert.status != "resolved",
        };
        if !allowed {
            return Err(ApiError::conflict(format!("alert {id:?} is {}; it cannot be {to}", alert.status))
                .with_details(json!({ "id": id, "status": alert.status, "wanted": to })));
        }
        alert.status = to.into();
        if to == "acknowledged" {
            alert.acknowledged_by = Some(caller.identity.subject.clone());
            alert.acknowledged_at = Some(now);
        } else {
            alert.resolved_by = Some(caller.identity.subject.clone());
            alert.resolved_at = Some(now);
        }
        if note.is_some() {
            alert.note = note.clone();
        }
        let new = serde_json::to_string(&alert.state()).unwrap_or_default();
        let mut conn = state.bus.conn();
        let set: i64 = redis::cmd("EVAL")
            .arg(CAS_LUA)
            .arg(1)
            .arg(alerts_key(state))
            .arg(&id)
            .arg(raw.unwrap_or_default())
            .arg(new)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("alert state"))?;
        if set == 1 {
            let action = if to == "acknowledged" { "alert.acknowledge" } else { "alert.resolve" };
            let details = json!({ "id": id, "status": to, "note": note });
            state.audit(&caller, action, &format!("/monitoring/alerts/{id}"), "ok", details).await?;
            return Ok(Json(alert));
        }
    }
    Err(ApiError::conflict(format!("alert {id:?} is being changed by someone else; retry")))
}

/// Acknowledges an open alert (409 when already acknowledged or resolved). Percent-encode a
/// `/` in the id.
#[utoipa::path(post, path = "/monitoring/alerts/{id}/acknowledge", tag = "monitoring", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "alert id (percent-encoded)")),
    request_body(content = Option<AlertAction>, description = "optional"),
    responses(
        (status = 200, body = Alert),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn acknowledge(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    body: Option<Json<AlertAction>>,
) -> Result<Json<Alert>, ApiError> {
    transition(&state, who, meta, id, body, "acknowledged").await
}

/// Resolves an open or acknowledged alert (409 when already resolved).
#[utoipa::path(post, path = "/monitoring/alerts/{id}/resolve", tag = "monitoring", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "alert id (percent-encoded)")),
    request_body(content = Option<AlertAction>, description = "optional"),
    responses(
        (status = 200, body = Alert),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn resolve(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    body: Option<Json<AlertAction>>,
) -> Result<Json<Alert>, ApiError> {
    transition(&state, who, meta, id, body, "resolved").await
}
