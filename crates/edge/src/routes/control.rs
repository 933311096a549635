//! Operator control: the scheduler (analysis cycles, pause, resume), the emergency stop, and
//! the per-account controls (pause, resume, close-all, circuit-breaker reset; several accounts
//! at once).
//!
//! Every control is a command on `ctl.commands`, obeyed by the workers; the answer waits (up
//! to [`COMMAND_WAIT`]) until this process's own follower has applied the command, so a read
//! right after says what was asked: 200 with `applied: true`. A command sent but not seen
//! applied within the wait is answered 202 with its id and `applied: false`, never as if it
//! had been.
//!
//! A trigger is a command too: the inference workers obey it by analysing the latest candle of
//! each symbol they hold once more, and the ensemble, risk and the executors treat the cycle's
//! signals like any others (nothing is analysed here). The edge follows the cycles from their
//! [`CycleEvent`]s on `audit.events` ([`Scheduler::observe`]), which the WebSocket hub also
//! sends as `cycle_start` and `cycle_complete` (with the cycle's decisions as `llm_decision`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How long a command's answer waits for this process's follower to apply it.
pub const COMMAND_WAIT: Duration = Duration::from_secs(2);
/// Cycles the scheduler view remembers.
const CYCLES_KEPT: usize = 100;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_bus::Envelope;
use tradeflow_core::Payload;
use tradeflow_core::control::{Command, ControlCommand, ControlState, CycleEvent, CyclePhase};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Role, Trader, Viewer};
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
        .routes(routes!(clear_emergency))
        .routes(routes!(account_action))
        .routes(routes!(bulk))
}

/// One analysis cycle as the edge has seen it (from its `cycle_start` and `cycle_complete`
/// events): the symbols the inference workers analysed and the ones decided on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cycle {
    /// Id of the `trigger` command.
    pub id: String,
    pub actor: String,
    /// When the trigger was issued (or the first `cycle_start` seen, without the trigger).
    pub started_at: i64,
    /// When the last symbol started was decided (`None` while one waits).
    pub finished_at: Option<i64>,
    /// Symbols the cycle is for, as this edge knew them when it saw the trigger (the
    /// trigger's symbol, or every symbol with a price): it is finished once each was decided
    /// on, whichever inference partition analyses it and whenever. Empty when the edge saw
    /// the cycle's events but not its trigger.
    pub expected: Vec<String>,
    /// Symbols analysed (`<symbol> <interval>`), and those every profile of the cycle decided on.
    pub symbols: Vec<String>,
    pub completed: Vec<String>,
    /// Signals the cycle produced, and decisions taken on them.
    pub signals: usize,
    pub decisions: usize,
}

/// Analysis cycles seen on the tap.
#[derive(Debug, Default)]
pub struct Scheduler {
    inner: Mutex<SchedulerInner>,
}

#[derive(Debug, Default)]
struct SchedulerInner {
    cycles: BTreeMap<String, Cycle>,
    /// Cycle ids, oldest first (at most [`CYCLES_KEPT`]).
    order: VecDeque<String>,
    /// The latest finished cycle.
    last: Option<String>,
    finished: u64,
    total_ms: u64,
}

impl SchedulerInner {
    /// The cycle `id`, created (started by `actor` at `time`) if new; at most [`CYCLES_KEPT`]
    /// are kept.
    fn cycle(&mut self, id: &str, actor: &str, time: i64) -> &mut Cycle {
        if !self.cycles.contains_key(id) {
            self.order.push_back(id.to_string());
            while self.order.len() > CYCLES_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.cycles.remove(&old);
                }
            }
        }
        self.cycles.entry(id.to_string()).or_insert_with(|| Cycle {
            id: id.to_string(),
            actor: actor.to_string(),
            started_at: time,
            finished_at: None,
            expected: Vec::new(),
            symbols: Vec::new(),
            completed: Vec::new(),
            signals: 0,
            decisions: 0,
        })
    }
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, SchedulerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds a tapped message in: `trigger` commands (the cycle and the symbols it is for;
    /// `symbols` are the ones with a price now) and [`CycleEvent`]s, other kinds ignored. The
    /// tap hands them on in time order, so a trigger comes before its cycle's events.
    pub fn observe(&self, env: &Envelope, symbols: impl FnOnce() -> Vec<String>) {
        if env.kind == ControlCommand::KIND {
            let Ok(c) = env.open::<ControlCommand>() else { return };
            let Command::Trigger { symbol, .. } = c.command else { return };
            let expected = symbol.map_or_else(symbols, |s| vec![s]);
            let mut s = self.lock();
            let cycle = s.cycle(&c.id, &c.actor, c.issued_at);
            cycle.expected = expected;
            return;
        }
        if env.kind != CycleEvent::KIND {
            return;
        }
        let Ok(e) = env.open::<CycleEvent>() else { return };
        let mut s = self.lock();
        let c = s.cycle(&e.cycle, &e.actor, e.time);
        // A symbol of several intervals starts and completes once per interval.
        let symbol = format!("{} {}", e.symbol, e.candle_id.split(':').nth(2).unwrap_or(""));
        match e.phase {
            CyclePhase::Start => {
                if c.actor.is_empty() {
                    c.actor = e.actor.clone();
                }
                c.started_at = c.started_at.min(e.time);
                c.symbols.push(symbol);
                c.signals += e.models.len();
            }
            CyclePhase::Complete => {
                c.completed.push(symbol);
                c.decisions += e.decided.len();
            }
        }
        let done: BTreeSet<&String> = c.completed.iter().collect();
        let decided = |symbol: &String| c.completed.iter().any(|d| d.split(' ').next() == Some(symbol.as_str()));
        let finished =
            !c.symbols.is_empty() && c.symbols.iter().all(|s| done.contains(s)) && c.expected.iter().all(decided);
        if finished && c.finished_at.is_none() {
            c.finished_at = Some(e.time);
            let took = e.time.saturating_sub(c.started_at).max(0) as u64;
            s.finished += 1;
            s.total_ms += took;
            s.last = Some(e.cycle);
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerStatus {
    pub paused: bool,
    /// Id of the emergency stop in force.
    pub emergency: Option<String>,
    /// Accounts paused on their own.
    pub paused_accounts: Vec<String>,
    /// Cycles started and not yet decided on for every symbol.
    pub running: Vec<Cycle>,
    pub last_cycle: Option<Cycle>,
    /// The last `trigger` command seen on ctl.commands.
    pub last_trigger: Option<String>,
    pub commands_applied: u64,
}

fn status_of(state: &AppState) -> SchedulerStatus {
    let c: ControlState = state.control.borrow().clone();
    let s = state.scheduler.lock();
    SchedulerStatus {
        paused: c.paused,
        emergency: c.emergency,
        paused_accounts: c.paused_accounts.into_iter().collect(),
        running: s
            .order
            .iter()
            .filter_map(|id| s.cycles.get(id))
            .filter(|c| c.finished_at.is_none())
            .cloned()
            .collect(),
        last_cycle: s.last.as_ref().and_then(|id| s.cycles.get(id)).cloned(),
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

/// Pause state, emergency stop, paused accounts, the running and the last analysis cycle.
#[utoipa::path(get, path = "/scheduler/status", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SchedulerStatus), (status = 401, body = crate::error::ErrorBody)))]
async fn status(State(state): State<AppState>, _who: Viewer) -> Json<SchedulerStatus> {
    Json(status_of(&state))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerStats {
    /// Cycles seen finished (every symbol started was decided on).
    pub cycles: u64,
    /// Mean time from a cycle's first start to its last completion.
    pub mean_cycle_ms: f64,
    pub running: usize,
    pub commands_applied: u64,
}

/// Cycle counts and durations.
#[utoipa::path(get, path = "/scheduler/stats", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = SchedulerStats), (status = 401, body = crate::error::ErrorBody)))]
async fn stats(State(state): State<AppState>, _who: Viewer) -> Json<SchedulerStats> {
    let applied = state.control.borrow().applied;
    let s = state.scheduler.lock();
    Json(SchedulerStats {
        cycles: s.finished,
        mean_cycle_ms: if s.finished == 0 { 0.0 } else { s.total_ms as f64 / s.finished as f64 },
        running: s.cycles.values().filter(|c| c.finished_at.is_none()).count(),
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
    /// One tracked symbol; absent: every symbol the inference workers hold.
    pub symbol: Option<String>,
    /// Profiles the cycle is for (configured ones); absent or empty: every profile.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// Runs an analysis cycle now (trader): a `trigger` command that the inference workers obey
/// (404 for a symbol that is not tracked or an unknown profile). The cycle's id is the
/// command's; follow it with `GET /scheduler/status` or the WebSocket's `cycle_start`,
/// `llm_decision` and `cycle_complete` events.
#[utoipa::path(post, path = "/scheduler/trigger", tag = "control", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<TriggerRequest>, description = "optional"),
    responses(
        (status = 200, body = Ack, description = "applied: this edge's control follower has the command (the inference workers follow the same stream; GET /scheduler/status shows the cycle)"),
        (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn trigger(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    body: Option<Json<TriggerRequest>>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let TriggerRequest { symbol, profiles } = body.map(|Json(b)| b).unwrap_or_default();
    if let Some(s) = &symbol
        && state.live.price(s).is_none()
    {
        return Err(ApiError::not_found("symbol", s));
    }
    if let Some(p) = profiles.iter().find(|p| !state.pipeline.profiles.iter().any(|q| q.name == **p)) {
        return Err(ApiError::not_found("profile", p));
    }
    let caller = meta.caller(who);
    let c = state.command(&caller, Command::Trigger { symbol, profiles }).await?;
    let applied = wait_applied(&state, |s| s.triggers.iter().any(|t| t.id == c.id)).await;
    Ok(Ack::new(c.id, applied, "analysis cycle requested: the inference workers analyse the latest candles now"))
}

/// Sends `command` and waits (up to [`COMMAND_WAIT`]) until this process's follower has
/// applied it (`applied(state)` holds). Returns the command's id and whether it was seen applied.
pub async fn send_and_wait(
    state: &AppState,
    caller: &Caller,
    command: Command,
    applied: impl Fn(&ControlState) -> bool,
) -> Result<(String, bool), ApiError> {
    send_then_wait(state, caller, command, |s, _| applied(s)).await
}

/// [`send_and_wait`] whose check also gets the command's id (a reset or a close-all is
/// applied when the state names this very command).
pub async fn send_then_wait(
    state: &AppState,
    caller: &Caller,
    command: Command,
    applied: impl Fn(&ControlState, &str) -> bool,
) -> Result<(String, bool), ApiError> {
    let c = state.command(caller, command).await?;
    let seen = wait_applied(state, |s| applied(s, &c.id)).await;
    Ok((c.id, seen))
}

/// Waits (up to [`COMMAND_WAIT`]) until this process's follower's state satisfies `applied`.
async fn wait_applied(state: &AppState, applied: impl Fn(&ControlState) -> bool) -> bool {
    let mut rx = state.control.clone();
    matches!(tokio::time::timeout(COMMAND_WAIT, rx.wait_for(|s| applied(s))).await, Ok(Ok(_)))
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

/// Pauses trading: no new decisions and no new orders (409 when already paused). 200 once this
/// process applied the command, 202 when that was not seen within 2 s.
#[utoipa::path(post, path = "/scheduler/pause", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Ack, description = "applied"),
    (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
    (status = 409, body = crate::error::ErrorBody),
    (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn pause(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    if state.control.borrow().paused {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_paused", "trading is already paused"));
    }
    let (id, applied) = send_and_wait(&state, &meta.caller(who), Command::Pause, |s| s.paused).await?;
    Ok(Ack::new(id, applied, "paused: no new decisions or orders until resumed"))
}

/// Resumes trading (409 when not paused). 200 once applied, 202 when not seen within 2 s.
#[utoipa::path(post, path = "/scheduler/resume", tag = "control", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Ack, description = "applied"),
    (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
    (status = 409, body = crate::error::ErrorBody),
    (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn resume(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    if !state.control.borrow().paused {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_paused", "trading is not paused"));
    }
    let (id, applied) = send_and_wait(&state, &meta.caller(who), Command::Resume, |s| !s.paused).await?;
    Ok(Ack::new(id, applied, "resumed"))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopAllRequest {
    /// Also close every open position at its symbol's latest close (default false).
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

/// Lifts the emergency stop (admin; 409 when none is in force): accounts take entries again,
/// except those their circuit breaker halted. Audited as `emergency_clear`.
#[utoipa::path(post, path = "/emergency/clear", tag = "control", security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Ack, description = "applied"),
        (status = 202, body = Ack, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 409, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn clear_emergency(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let caller = meta.caller(who);
    let outcome = async {
        let Some(stop) = state.control.borrow().emergency.clone() else {
            return Err(ApiError::new(StatusCode::CONFLICT, "no_emergency", "no emergency stop is in force"));
        };
        let (id, applied) = send_and_wait(&state, &caller, Command::ClearEmergency, |s| s.emergency.is_none()).await?;
        Ok(((id.clone(), applied), json!({ "command": id, "lifted": stop })))
    }
    .await;
    let (id, applied) = state.audited(&caller, "emergency_clear", "/api/v1/emergency/clear", outcome).await?;
    Ok(Ack::new(id, applied, "emergency stop lifted"))
}

/// What an operator can do to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountAction {
    /// Trading on (`set_trading`): entries allowed again.
    Enable,
    /// Trading off (`set_trading`): entries refused with `trading_disabled`; exits happen.
    Disable,
    /// No new entries (`pause_account`), refused with `paused`; exits happen.
    Pause,
    Resume,
    /// Close every open position at the latest price (`close_all`).
    CloseAll,
    /// Reset the circuit breaker and the loss streak (`reset_account`; admin).
    Reset,
}

impl AccountAction {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            "close-all" => Self::CloseAll,
            "reset" => Self::Reset,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::CloseAll => "close_all",
            Self::Reset => "reset",
        }
    }

    /// The least role: resetting a breaker overrides a risk limit, the admin's call.
    fn role(self) -> Role {
        if self == Self::Reset { Role::Admin } else { Role::Trader }
    }

    fn command(self, account: &str) -> Command {
        let account = account.to_string();
        match self {
            Self::Enable => Command::SetTrading { account, enabled: true },
            Self::Disable => Command::SetTrading { account, enabled: false },
            Self::Pause => Command::PauseAccount { account },
            Self::Resume => Command::ResumeAccount { account },
            Self::CloseAll => Command::CloseAll { account },
            Self::Reset => Command::ResetAccount { account },
        }
    }

    /// Whether `s` shows the command `id` for `account` applied.
    fn applied(self, s: &ControlState, account: &str, id: &str) -> bool {
        match self {
            Self::Enable => s.trading.get(account) == Some(&true),
            Self::Disable => s.trading.get(account) == Some(&false),
            Self::Pause => s.paused_accounts.contains(account),
            Self::Resume => !s.paused_accounts.contains(account),
            Self::CloseAll => s.close_all.get(account).is_some_and(|c| c == id),
            Self::Reset => s.resets.get(account).is_some_and(|c| c == id),
        }
    }

    /// What the answer says when it was applied.
    fn done(self) -> &'static str {
        match self {
            Self::Enable => "trading enabled",
            Self::Disable => "trading disabled: entries are refused, exits happen",
            Self::Pause => "paused: no new entries until resumed",
            Self::Resume => "resumed",
            Self::CloseAll => "every open position is being closed at the latest price",
            Self::Reset => "circuit breaker and loss streak reset",
        }
    }
}

/// Refuses a caller below the action's role (403, as the extractors do).
fn require(who: &crate::auth::Identity, action: AccountAction) -> Result<(), ApiError> {
    let least = action.role();
    if who.role < least {
        return Err(ApiError::forbidden(format!(
            "{} has role {}; {} needs {}",
            who.subject,
            who.role.as_str(),
            action.as_str(),
            least.as_str()
        ))
        .with_details(json!({ "role": who.role.as_str(), "required_role": least.as_str() })));
    }
    Ok(())
}

/// The accounts that are not configured, in the order asked.
fn unknown_accounts<'a>(state: &AppState, ids: &'a [String]) -> Vec<&'a str> {
    let accounts = state.pipeline.accounts.read().unwrap_or_else(|p| p.into_inner());
    ids.iter().filter(|id| !accounts.iter().any(|a| a.id == **id)).map(String::as_str).collect()
}

/// The result of an account control.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountAck {
    pub account: String,
    pub action: AccountAction,
    /// Id of the command on `ctl.commands`.
    pub command: String,
    /// Whether this process's control follower applied it within the wait (2 s).
    pub applied: bool,
    pub message: String,
}

async fn act(state: &AppState, caller: &Caller, action: AccountAction, account: &str) -> Result<AccountAck, ApiError> {
    let (command, applied) =
        send_then_wait(state, caller, action.command(account), |s, id| action.applied(s, account, id)).await?;
    let message = if applied {
        action.done().to_string()
    } else {
        format!("command {command} sent; not seen applied within {} s", COMMAND_WAIT.as_secs())
    };
    Ok(AccountAck { account: account.to_string(), action, command, applied, message })
}

/// An account control (trader; `reset` admin): `enable`, `disable`, `pause`, `resume`,
/// `close-all` (every open position closed at the latest price), `reset` (the circuit breaker
/// and loss streak). 404 for an unknown account or action; `pause` of a paused account and
/// `resume` of one that is not are refused with 409. Audited as `account_<action>`.
#[utoipa::path(post, path = "/control/accounts/{id}/{action}", tag = "control", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id"),
        ("action" = String, Path, description = "enable, disable, pause, resume, close-all or reset")),
    responses(
        (status = 200, body = AccountAck, description = "applied"),
        (status = 202, body = AccountAck, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 409, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn account_action(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path((id, action)): Path<(String, String)>,
) -> Result<(StatusCode, Json<AccountAck>), ApiError> {
    let Some(action) = AccountAction::parse(&action) else {
        return Err(ApiError::not_found("account action", &action)
            .with_details(json!({ "expected": ["enable", "disable", "pause", "resume", "close-all", "reset"] })));
    };
    require(&who, action)?;
    let caller = meta.caller(who);
    let outcome = async {
        if !unknown_accounts(&state, std::slice::from_ref(&id)).is_empty() {
            return Err(ApiError::not_found("account", &id));
        }
        let paused = state.control.borrow().paused_accounts.contains(&id);
        match action {
            AccountAction::Pause if paused => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "already_paused",
                    format!("account {id:?} is already paused"),
                ));
            }
            AccountAction::Resume if !paused => {
                return Err(ApiError::new(StatusCode::CONFLICT, "not_paused", format!("account {id:?} is not paused")));
            }
            _ => {}
        }
        let ack = act(&state, &caller, action, &id).await?;
        let details = json!({ "account": id, "command": ack.command, "applied": ack.applied });
        Ok((ack, details))
    }
    .await;
    let resource = format!("/api/v1/control/accounts/{id}/{}", action.as_str().replace('_', "-"));
    let ack = state.audited(&caller, &format!("account_{}", action.as_str()), &resource, outcome).await?;
    Ok((command_status(ack.applied), Json(ack)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: AccountAction,
    /// Configured account ids, 1 to 100, each once.
    #[schema(schema_with = account_ids)]
    pub accounts: Vec<String>,
}

/// `accounts`' schema: utoipa's attributes cannot say `uniqueItems`.
fn account_ids() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, Object, Type};
    ArrayBuilder::new()
        .items(Object::with_type(Type::String))
        .min_items(Some(1))
        .max_items(Some(100))
        .unique_items(true)
        .description(Some("Configured account ids, 1 to 100, each once."))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAck {
    pub action: AccountAction,
    /// Whether every command was seen applied within the wait.
    pub applied: bool,
    /// One per account, in the order asked.
    pub results: Vec<AccountAck>,
}

/// Most accounts in one bulk request.
const BULK_MAX: usize = 100;

/// One control for several accounts at once (trader; `reset` admin): one command per
/// account, all sent, then awaited together. Every account must be configured (404 naming
/// the unknown ones, nothing sent). Pausing a paused account (or resuming one that is not)
/// changes nothing and is not refused. 200 when every command was seen applied, 202 when
/// one was not. Audited as `accounts_<action>`.
#[utoipa::path(post, path = "/control/accounts", tag = "control", security(("bearer" = []), ("api_key" = [])),
    request_body = BulkRequest,
    responses(
        (status = 200, body = BulkAck, description = "every command applied"),
        (status = 202, body = BulkAck, description = "sent; not every one seen applied within 2 s"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn bulk(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<BulkRequest>,
) -> Result<(StatusCode, Json<BulkAck>), ApiError> {
    require(&who, req.action)?;
    let caller = meta.caller(who);
    let action = req.action;
    let outcome = async {
        let n = req.accounts.len();
        if n == 0 || n > BULK_MAX {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("accounts: expected 1 to {BULK_MAX} ids, got {n}"),
            )
            .with_details(json!({ "field": "accounts" })));
        }
        if let Some((i, id)) = req.accounts.iter().enumerate().find(|(i, id)| req.accounts[..*i].contains(id)) {
            return Err(ApiError::unprocessable("invalid_body", format!("accounts[{i}]: {id:?} is listed twice"))
                .with_details(json!({ "field": format!("accounts[{i}]") })));
        }
        let unknown = unknown_accounts(&state, &req.accounts);
        if !unknown.is_empty() {
            return Err(ApiError::not_found("account", &unknown.join(", ")).with_details(json!({ "unknown": unknown })));
        }
        // Every command first, then one wait for all of them.
        let mut sent = Vec::with_capacity(n);
        for account in &req.accounts {
            sent.push((account.clone(), state.command(&caller, action.command(account)).await?.id));
        }
        let all = |s: &ControlState| sent.iter().all(|(a, id)| action.applied(s, a, id));
        wait_applied(&state, all).await;
        let now = state.control.borrow().clone();
        let results: Vec<AccountAck> = sent
            .iter()
            .map(|(account, command)| {
                let applied = action.applied(&now, account, command);
                let message = if applied {
                    action.done().to_string()
                } else {
                    format!("command {command} sent; not seen applied within {} s", COMMAND_WAIT.as_secs())
                };
                AccountAck { account: account.clone(), action, command: command.clone(), applied, message }
            })
            .collect();
        let applied = results.iter().all(|r| r.applied);
        let details = json!({
            "accounts": req.accounts,
            "commands": results.iter().map(|r| &r.command).collect::<Vec<_>>(),
            "applied": applied,
        });
        Ok((BulkAck { action, applied, results }, details))
    }
    .await;
    let ack =
        state.audited(&caller, &format!("accounts_{}", action.as_str()), "/api/v1/control/accounts", outcome).await?;
    Ok((command_status(ack.applied), Json(ack)))
}
