//! What every handler can reach: Redis (bus, producer), the SQL store, auth, the live view,
//! the WebSocket hub, metrics, and the pipeline's configuration (profiles, accounts, models).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;
use tradeflow_audit::AuditStore;
use tradeflow_bus::{Bus, Producer};
use tradeflow_core::control::{AuditRecord, ControlCommand, ControlState};
use tradeflow_ensemble::Profile;
use tradeflow_risk::AccountConfig;

use crate::auth::{Auth, Identity};
use crate::config::EdgeConfig;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::live::Live;
use crate::request_id::{ClientIp, RequestId};

/// The pipeline's configuration as the edge knows it.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub profiles: Vec<Profile>,
    /// The accounts; changed by the account routes (which rewrite `accounts_path` and send
    /// `reload`).
    pub accounts: RwLock<Vec<AccountConfig>>,
    /// The accounts file the workers read; `None`: the default accounts, not editable.
    pub accounts_path: Option<PathBuf>,
    /// Inference model names (`technical`, `rsi`, ..., analyst names).
    pub models: Vec<String>,
    /// The inference configuration file (`--llm-config`), for on-demand analysis.
    pub llm_config: Option<PathBuf>,
}

/// The edge's own metrics.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// route = the matched route template (bounded), status = the code.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub ws_clients: IntGauge,
    pub ws_events: IntCounter,
    pub ws_dropped_slow: IntCounter,
    /// `tradeflow_model_live_hit_rate{model}`: see [`crate::routes::models::run_hit_rates`].
    pub model_live_hit_rate: GaugeVec,
}

impl EdgeMetrics {
    pub fn register(registry: &Registry) -> Result<EdgeMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("tradeflow_edge_requests_total", "HTTP requests served, by route template, method and status"),
            &["route", "method", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("tradeflow_edge_request_seconds", "HTTP request duration, by route template")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
            &["route"],
        )?;
        let ws_clients = IntGauge::new("tradeflow_edge_ws_clients", "WebSocket clients connected")?;
        let ws_events = IntCounter::new("tradeflow_edge_ws_events_total", "Events published to WebSocket clients")?;
        let ws_dropped_slow = IntCounter::new(
            "tradeflow_edge_ws_dropped_slow_total",
            "WebSocket clients dropped because their event queue was full",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(ws_clients.clone()))?;
        registry.register(Box::new(ws_events.clone()))?;
        let model_live_hit_rate = GaugeVec::new(
            Opts::new(
                "tradeflow_model_live_hit_rate",
                "Share of a deployed learned model's long/short signals of the last 30 days whose next stored bar \
                 moved their way (absent until one is measured).",
            ),
            &["model"],
        )?;
        registry.register(Box::new(ws_dropped_slow.clone()))?;
        registry.register(Box::new(model_live_hit_rate.clone()))?;
        Ok(EdgeMetrics { requests, request_seconds, ws_clients, ws_events, ws_dropped_slow, model_live_hit_rate })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub bus: Bus,
    pub producer: Producer,
    /// `None` when no database is configured: routes that need it answer 503.
    pub store: Option<Arc<AuditStore>>,
    pub auth: Arc<Auth>,
    pub config: Arc<EdgeConfig>,
    pub live: Arc<Live>,
    /// Answers to manual order requests, handed over by the tap.
    pub outcomes: Arc<crate::outcomes::Outcomes>,
    pub hub: Arc<Hub>,
    pub registry: Registry,
    pub metrics: EdgeMetrics,
    pub pipeline: Arc<Pipeline>,
    pub control: watch::Receiver<ControlState>,
    pub scheduler: Arc<crate::routes::control::Scheduler>,
    /// State of the AI routes (analysis cache, ...).
    pub ai: Arc<crate::routes::ai::AiState>,
    /// State of the monitoring routes (stream rate samples, ...).
    pub monitor: Arc<crate::routes::monitoring::MonitorState>,
    /// What `/health` checks: the stop token and the background tasks.
    pub serving: Arc<crate::routes::health::Serving>,
    pub started_at: Instant,
}

/// Who made a mutating call, from where, under which request id: what the audit log needs.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub ip: Option<String>,
    pub request_id: String,
}

impl Caller {
    pub fn new(identity: Identity, ip: Option<&ClientIp>, request_id: Option<&RequestId>) -> Caller {
        Caller {
            identity,
            ip: ip.map(|i| i.0.to_string()),
            request_id: request_id.map(|r| r.0.clone()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }
}

impl AppState {
    /// Brings the gauges and counters mirrored from the hub up to date (before a scrape).
    pub fn refresh_gauges(&self) {
        let s = self.hub.stats();
        let m = &self.metrics;
        m.ws_clients.set(s.clients as i64);
        m.ws_events.inc_by(s.events_total.saturating_sub(m.ws_events.get()));
        m.ws_dropped_slow.inc_by(s.dropped_slow_total.saturating_sub(m.ws_dropped_slow.get()));
    }

    /// The SQL store, or 503.
    pub fn store(&self) -> Result<&AuditStore, ApiError> {
        self.store.as_deref().ok_or_else(|| ApiError::unavailable("database", "no database is configured"))
    }

    /// Writes the outcome of a mutation to the audit log: `ok` with `details`, or `refused`
    /// with the error of a 4xx (a 5xx is a dependency failure, not the caller's doing). An
    /// audit failure fails a change; it does not hide a refusal.
    pub async fn audited<T>(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        outcome: Result<(T, serde_json::Value), ApiError>,
    ) -> Result<T, ApiError> {
        match outcome {
            Ok((value, details)) => {
                self.audit(caller, action, resource, "ok", details).await?;
                Ok(value)
            }
            Err(e) if e.status.is_client_error() => {
                let details = serde_json::json!({ "code": e.code, "message": e.message, "status": e.status.as_u16() });
                if let Err(a) = self.audit(caller, action, resource, "refused", details).await {
                    tracing::warn!(error = %a, "a refused call could not be audited");
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes an audit record for a mutating call (on `audit.events`; the audit worker stores
    /// it in `audit_log`). Failing to audit fails the call: an unaudited change is worse
    /// than a refused one.
    pub async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        status: &str,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let now = tradeflow_core::time::now_ms();
        let record = AuditRecord {
            id: format!("audit:{now}:{}:{action}", caller.request_id),
            actor: caller.identity.subject.clone(),
            action: action.into(),
            resource: resource.into(),
            ip: caller.ip.clone(),
            status: status.into(),
            details: details.to_string(),
            time: now,
        };
        self.producer.publish("audit.events", &record.message_id(), &record.actor, None, &record).await?;
        Ok(())
    }

    /// Sends an operator command on `ctl.commands` (it is audited by the audit worker).
    pub async fn command(
        &self,
        caller: &Caller,
        command: tradeflow_core::control::Command,
    ) -> Result<ControlCommand, ApiError> {
        let c = ControlCommand::new(
            command,
            caller.identity.subject.clone(),
            caller.ip.clone(),
            tradeflow_core::time::now_ms(),
        );
        tradeflow_bus::control::send_command(&self.producer, &c).await?;
        Ok(c)
    }
}

/// The caller's address and request id, from the request's extensions (always present behind
/// the edge's layers; absent only in unit tests).
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<ClientIp>,
    pub request_id: Option<RequestId>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta {
            ip: parts.extensions.get::<ClientIp>().copied(),
            request_id: parts.extensions.get::<RequestId>().cloned(),
        })
    }
}

impl RequestMeta {
    pub fn caller(&self, identity: Identity) -> Caller {
        Caller::new(identity, self.ip.as_ref(), self.request_id.as_ref())
    }
}
