//! Operator control: the scheduler (analysis cycles, pause, resume) and the emergency stop.
//!
//! Pause, resume and emergency stop are commands on `ctl.commands`, obeyed by every worker;
//! the answer waits (up to [`COMMAND_WAIT`]) until this process's own follower has applied the
//! command, so a `GET /scheduler/status` right after says what was asked: 200 with `applied:
//! true`. A command sent but not seen applied within the wait is answered 202 with its id and
//! `applied: false`, never as if it had been. A trigger runs one analysis cycle
//! in the edge (the configured models over each tracked symbol's latest candles, the same
//! code the inference stage runs), broadcasts its results on the WebSocket and records a
//! `trigger` command; a second trigger while a cycle runs is refused with 409.

use std::sync::Mutex;
use std::time::Duration;

/// How long a command's answer waits for this process's follower to apply it.
pub const COMMAND_WAIT: Duration = Duration::from_secs(2);

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_core::control::{Command, ControlState};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Trader, Viewer};
use crate::error::{ApiError, Json};
use crate::state::{AppState, Caller, RequestMeta};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(stats))
        .routes(routes!(next_run))
        .routes(routes!(trigger))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(stop_all))
}

/// One analysis cycle's record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cycle {
    pub id: String,
    pub symbol: Option<String>,
    pub actor: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Symbols analysed and signals produced.
    pub symbols: usize,
    pub signals: usize,
    pub error: Option<String>,
}

/// Analysis cycles run by the edge.
#[derive(Debug, Default)]
pub struct Scheduler {
    inner: Mutex<SchedulerInner>,
}

#[derive(Debug, Default)]
struct SchedulerInner {
    running: Option<Cycle>,
    /// The id of the last trigger this edge sent itself (its follower must not run it again).
    own_trigger: Option<String>,
    last: Option<Cycle>,
    cycles: u64,
    failures: u64,
    total_ms: u64,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, SchedulerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerStatus {
    pub paused: bool,
    /// Id of the emergency stop in force.
    pub emergency: Option<String>,
    pub running: Option<Cycle>,
    pub last_cycle: Option<Cycle>,
    /// The last `trigger` command seen on ctl.commands (id, symbol).
    pub last_trigger: Option<String>,
    pub commands_applied: u64,
}

fn status_of(state: &AppState) -> SchedulerStatus {
    let c: ControlState = state.control.borrow().clone();
    let s = state.scheduler.lock();
    SchedulerStatus {
        paused: c.paused,
        emergency: c.emergency,
        running: s.running.clone(),
        last_cycle: s.last.clone(),
        last_trigger: c.last_trigger.map(|(id, _)| id),
        commands_applied: c.applied,
    }
}

/// What `status_update` WebSocket events carry.
pub fn status_snapshot(state: &AppState) -> Value {
    let c = state.control.borrow().clone();
    let accounts = state.live.accounts();
    let equity: f64 = accounts.values().map(|a| a.equity).sum();
    let (events, last_event_at) = state.live.activity();
    json!({
        "paused": c.paused,
        "emergency": c.emergency,
        "accounts": accounts.len(),
        "total_equity": equity,
        "open_positions": state.live.positions(None).len(),
        "symbols": state.live.prices().len(),
        "events_seen": events,
        "last_event_at": last_event_at,
        "ws_clients": state.hub.client_count(),
        "uptime_s": state.started_at.elapsed().as_secs(),
    })
}

/// Pause state, emergency stop, the running and the last analysis cycle.
#[utoipa::path(get, path = "/scheduler/status", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SchedulerStatus), (status = 401, body = crate::error::ErrorBody)))]
async fn status(State(state): State<AppState>, _who: Viewer) -> Json<SchedulerStatus> {
    Json(status_of(&state))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerStats {
    pub cycles: u64,
    pub failures: u64,
    pub mean_cycle_ms: f64,
    pub commands_applied: u64,
}

/// Cycle counts and durations.
#[utoipa::path(get, path = "/scheduler/stats", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SchedulerStats), (status = 401, body = crate::error::ErrorBody)))]
async fn stats(State(state): State<AppState>, _who: Viewer) -> Json<SchedulerStats> {
    let applied = state.control.borrow().applied;
    let s = state.scheduler.lock();
    Json(SchedulerStats {
        cycles: s.cycles,
        failures: s.failures,
        mean_cycle_ms: if s.cycles == 0 { 0.0 } else { s.total_ms as f64 / s.cycles as f64 },
        commands_applied: applied,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextRun {
    /// Per tracked series, when its next bar closes (epoch ms): the pipeline analyses on
    /// every closed bar.
    pub series: Vec<NextBar>,
    /// The soonest of them.
    pub next_run_at: Option<i64>,
    pub paused: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextBar {
    pub symbol: String,
    pub interval: String,
    pub last_open_time: i64,
    pub next_close_at: i64,
}

/// When the next analysis happens: the next bar close of each tracked series.
#[utoipa::path(get, path = "/scheduler/next-run", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = NextRun), (status = 401, body = crate::error::ErrorBody)))]
async fn next_run(State(state): State<AppState>, _who: Viewer) -> Json<NextRun> {
    let series: Vec<NextBar> = state
        .live
        .prices()
        .into_iter()
        .filter_map(|p| {
            let step = p.interval.parse::<tradeflow_core::market::Interval>().ok()?.millis();
            // The latest bar closed at open_time + step; the next one closes a step later.
            Some(NextBar {
                next_close_at: p.open_time + 2 * step,
                symbol: p.symbol,
                interval: p.interval,
                last_open_time: p.open_time,
            })
        })
        .collect();
    let next_run_at = series.iter().map(|s| s.next_close_at).min();
    Json(NextRun { series, next_run_at, paused: state.control.borrow().paused })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// One tracked symbol; absent: every tracked symbol.
    pub symbol: Option<String>,
}

/// Runs one analysis cycle now (409 while one runs; 404 for a symbol that is not tracked).
#[utoipa::path(post, path = "/scheduler/trigger", tag = "control", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<TriggerRequest>, description = "optional"),
    responses(
        (status = 202, body = Cycle),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn trigger(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    body: Option<Json<TriggerRequest>>,
) -> Result<(StatusCode, Json<Cycle>), ApiError> {
    let symbol = body.and_then(|Json(b)| b.symbol);
    if let Some(s) = &symbol
        && state.live.price(s).is_none()
    {
        return Err(ApiError::not_found("symbol", s));
    }
    let caller = meta.caller(who);
    let cycle = begin_cycle(&state, format!("cycle-{}", caller.request_id), symbol.clone(), &caller.identity.subject)?;
    match state.command(&caller, Command::Trigger { symbol }).await {
        Ok(c) => state.scheduler.lock().own_trigger = Some(c.id),
        Err(e) => {
            state.scheduler.lock().running = None;
            return Err(e);
        }
    }
    spawn_cycle(state, cycle.clone());
    Ok((StatusCode::ACCEPTED, Json(cycle)))
}

/// Marks a cycle as running, or refuses with 409 when one is.
fn begin_cycle(state: &AppState, id: String, symbol: Option<String>, actor: &str) -> Result<Cycle, ApiError> {
    let mut s = state.scheduler.lock();
    if let Some(running) = &s.running {
        return Err(ApiError::conflict(format!("analysis cycle {} is running", running.id))
            .with_details(json!({ "running": running.id })));
    }
    let cycle = Cycle {
        id,
        symbol,
        actor: actor.to_string(),
        started_at: tradeflow_core::time::now_ms(),
        finished_at: None,
        symbols: 0,
        signals: 0,
        error: None,
    };
    s.running = Some(cycle.clone());
    Ok(cycle)
}

/// Runs a begun cycle in the background and records its outcome.
fn spawn_cycle(state: AppState, mut record: Cycle) {
    tokio::spawn(async move {
        let outcome = crate::routes::ai::run_cycle(&state, record.symbol.as_deref()).await;
        record.finished_at = Some(tradeflow_core::time::now_ms());
        match outcome {
            Ok((symbols, signals)) => {
                record.symbols = symbols;
                record.signals = signals;
            }
            Err(e) => record.error = Some(e.message),
        }
        let mut s = state.scheduler.lock();
        s.cycles += 1;
        if record.error.is_some() {
            s.failures += 1;
        }
        s.total_ms += record.finished_at.unwrap_or(record.started_at).saturating_sub(record.started_at) as u64;
        s.running = None;
        s.last = Some(record);
    });
}

/// Acts on `trigger` commands sent by others (`tradeflow ctl trigger [SYMBOL]`, another
/// edge): each new one runs a cycle here, unless one is running (then it is skipped and
/// logged: the running cycle covers it). Until `stop`.
pub async fn follow_triggers(state: AppState, stop: tokio_util::sync::CancellationToken) {
    let mut rx = state.control.clone();
    // Triggers from before this process started are history, not requests.
    let mut seen = rx.borrow_and_update().last_trigger.clone().map(|(id, _)| id);
    loop {
        tokio::select! { _ = stop.cancelled() => return, r = rx.changed() => if r.is_err() { return } }
        let Some((id, symbol)) = rx.borrow_and_update().last_trigger.clone() else { continue };
        if seen.as_deref() == Some(id.as_str()) {
            continue;
        }
        seen = Some(id.clone());
        if state.scheduler.lock().own_trigger.as_deref() == Some(id.as_str()) {
            continue;
        }
        match begin_cycle(&state, format!("cycle-{id}"), symbol, "ctl.commands") {
            Ok(cycle) => spawn_cycle(state.clone(), cycle),
            Err(e) => tracing::info!(trigger = %id, reason = %e, "trigger skipped"),
        }
    }
}

/// Sends `command` and waits (up to [`COMMAND_WAIT`]) until this process's follower has
/// applied it (`applied(state)` holds). Returns the command's id and whether it was seen applied.
pub async fn send_and_wait(
    state: &AppState,
    caller: &Caller,
    command: Command,
    applied: impl Fn(&ControlState) -> bool,
) -> Result<(String, bool), ApiError> {
    let c = state.command(caller, command).await?;
    let mut rx = state.control.clone();
    let seen = matches!(tokio::time::timeout(COMMAND_WAIT, rx.wait_for(|s| applied(s))).await, Ok(Ok(_)));
    Ok((c.id, seen))
}

/// The answer to a command: 200 when this process's follower applied it within the wait, 202
/// (sent, not confirmed yet) when not.
pub fn command_status(applied: bool) -> StatusCode {
    if applied { StatusCode::OK } else { StatusCode::ACCEPTED }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ack {
    /// Id of the command on `ctl.commands`.
    pub command: String,
    /// Whether this process's control follower applied it within the wait (2 s). `false`
    /// (answered 202): the command was sent, its application is not confirmed; follow it with
    /// `GET /scheduler/status`.
    pub applied: bool,
    pub message: String,
}

impl Ack {
    fn new(command: String, applied: bool, done: &str) -> (StatusCode, Json<Ack>) {
        let message = if applied {
            done.to_string()
        } else {
            format!(
                "command {command} sent; not seen applied within {} s: check GET /api/v1/scheduler/status",
                COMMAND_WAIT.as_secs()
            )
        };
        (command_status(applied), Json(Ack { command, applied, message }))
    }
}

/// Pauses trading: no new decisions and no new orders (400 when already paused). 200 once this
/// process applied the command, 202 when that was not seen within 2 s.
#[utoipa::path(post, path = "/scheduler/pause", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Ack, description = "applied"),
    (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
    (status = 400, body = crate::error::ErrorBody),
    (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn pause(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    if state.control.borrow().paused {
        return Err(ApiError::bad_request("already_paused", "trading is already paused"));
    }
    let (id, applied) = send_and_wait(&state, &meta.caller(who), Command::Pause, |s| s.paused).await?;
    Ok(Ack::new(id, applied, "paused: no new decisions or orders until resumed"))
}

/// Resumes trading (400 when not paused). 200 once applied, 202 when not seen within 2 s.
#[utoipa::path(post, path = "/scheduler/resume", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Ack, description = "applied"),
    (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
    (status = 400, body = crate::error::ErrorBody),
    (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn resume(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    if !state.control.borrow().paused {
        return Err(ApiError::bad_request("not_paused", "trading is not paused"));
    }
    let (id, applied) = send_and_wait(&state, &meta.caller(who), Command::Resume, |s| !s.paused).await?;
    Ok(Ack::new(id, applied, "resumed"))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopAllRequest {
    /// Also close every open position at the next price (default false).
    #[serde(default)]
    pub close_positions: bool,
}

/// Emergency stop: halts every account (admin). `tradeflow ctl clear-emergency` lifts it.
#[utoipa::path(post, path = "/emergency/stop-all", tag = "control", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<StopAllRequest>, description = "optional"),
    responses(
        (status = 200, body = Ack, description = "applied"),
        (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn stop_all(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    body: Option<Json<StopAllRequest>>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let close_positions = body.map(|Json(b)| b.close_positions).unwrap_or(false);
    let caller = meta.caller(who);
    // The stop in force must be this one (an earlier stop does not confirm it).
    let c = state.command(&caller, Command::EmergencyStop { close_positions }).await?;
    let mut rx = state.control.clone();
    let applied = matches!(
        tokio::time::timeout(COMMAND_WAIT, rx.wait_for(|s| s.emergency.as_deref() == Some(c.id.as_str()))).await,
        Ok(Ok(_))
    );
    let done =
        if close_positions { "every account halted; open positions are being closed" } else { "every account halted" };
    Ok(Ack::new(c.id, applied, done))
}
