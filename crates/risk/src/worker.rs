//! The risk worker's bus handler: decisions and manual order requests of one `ens.decisions`
//! partition in; intents,
//! rejections and marks to `risk.orders` (key = account); account alerts to `audit.events`.
//!
//! Everything a batch produces goes out in the runner's MULTI/EXEC that acknowledges the batch
//! and checkpoints the account states: all of it or none. If that fails the partition restarts
//! from its checkpoint, so the batch sends the same messages with the same sequence numbers
//! again (and the executor ignores numbers it has applied).

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::keys::partition_of;
use tradeflow_bus::{Delivery, EnvelopeRef, HandlerFactory, Outcome, Outgoing, Producer, StageHandler, StageLogic};
use tradeflow_core::MessageId;
use tradeflow_core::Payload;
use tradeflow_core::control::ControlState;
use tradeflow_core::decision::Decision;
use tradeflow_core::order::RiskMessage;
use tradeflow_core::report::AccountReport;
use tradeflow_core::request::OrderRequest;
use tradeflow_core::time::now_ms;

use crate::account::AccountConfig;
use crate::stage::{RiskOutput, RiskStage};

pub const ORDERS: &str = "risk.orders";
pub const AUDIT: &str = "audit.events";

/// `tradeflow_risk_*` metrics.
#[derive(Clone)]
pub struct RiskMetrics {
    /// By account and outcome (order, rejected, mark).
    pub messages: IntCounterVec,
    /// By account and reason code.
    pub rejections: IntCounterVec,
    /// By account and kind (circuit_breaker, cooldown, emergency_stop, reset).
    pub alerts: IntCounterVec,
}

impl RiskMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let messages = IntCounterVec::new(
            Opts::new("tradeflow_risk_messages_total", "Messages sent to risk.orders, by account and outcome."),
            &["account", "outcome"],
        )?;
        let rejections = IntCounterVec::new(
            Opts::new("tradeflow_risk_rejections_total", "Refused entries, by account and reason."),
            &["account", "reason"],
        )?;
        let alerts = IntCounterVec::new(
            Opts::new("tradeflow_risk_alerts_total", "Account alerts (circuit breaker, cooldown, stops), by kind."),
            &["account", "kind"],
        )?;
        for m in [&messages, &rejections, &alerts] {
            registry.register(Box::new(m.clone()))?;
        }
        Ok(Self { messages, rejections, alerts })
    }
}

/// The risk stage as its worker drives it (through [`StageHandler`]).
pub struct RiskHandler {
    stage: RiskStage,
    producer: Producer,
    metrics: RiskMetrics,
    control: watch::Receiver<ControlState>,
}

impl RiskHandler {
    /// Encodes a batch's (or tick's) output.
    fn prepare(&self, out: &RiskOutput) -> Result<Vec<Outgoing>, String> {
        let mut batch: Vec<Outgoing> = Vec::with_capacity(out.messages.len() + out.alerts.len());
        for m in &out.messages {
            let id = MessageId::new(m.id()).map_err(|e| format!("message id {:?}: {e}", m.id()))?;
            let prepared = match m {
                RiskMessage::Order(o) => self.producer.prepare(ORDERS, &id, &o.account, None, o),
                RiskMessage::Rejected(r) => self.producer.prepare(ORDERS, &id, &r.account, None, r),
                RiskMessage::Mark(k) => self.producer.prepare(ORDERS, &id, &k.account, None, k),
            };
            batch.push(prepared.map_err(|e| e.to_string())?);
        }
        for a in &out.alerts {
            let id = MessageId::new(a.id.clone()).map_err(|e| format!("alert id {:?}: {e}", a.id))?;
            batch.push(self.producer.prepare(AUDIT, &id, &a.account, None, a).map_err(|e| e.to_string())?);
        }
        Ok(batch)
    }

    fn count(&self, out: &RiskOutput) {
        for m in &out.messages {
            let outcome = match m {
                RiskMessage::Order(_) => "order",
                RiskMessage::Rejected(r) => {
                    self.metrics.rejections.with_label_values(&[r.account.as_str(), r.reason.code()]).inc();
                    "rejected"
                }
                RiskMessage::Mark(_) => "mark",
            };
            self.metrics.messages.with_label_values(&[m.account(), outcome]).inc();
        }
        for a in &out.alerts {
            self.metrics.alerts.with_label_values(&[a.account.as_str(), a.kind.as_str()]).inc();
        }
    }
}

/// What risk's input stream carries: the ensemble's decisions, the operators' order requests
/// and the executors' exchange reports, in one order per partition.
#[derive(Debug)]
pub enum RiskInput {
    Decision(Decision),
    Request(OrderRequest),
    Report(AccountReport),
}

impl StageLogic for RiskHandler {
    type Msg = RiskInput;
    type Saved = RiskStage;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<RiskInput, DecodeError> {
        if envelope.kind == OrderRequest::KIND {
            envelope.open::<OrderRequest>().map(RiskInput::Request)
        } else if envelope.kind == AccountReport::KIND {
            envelope.open::<AccountReport>().map(RiskInput::Report)
        } else {
            envelope.open::<Decision>().map(RiskInput::Decision)
        }
    }

    fn save(&self) -> RiskStage {
        self.stage.clone()
    }

    fn restore(&mut self, saved: RiskStage) {
        self.stage = saved;
    }

    async fn run(&mut self, batch: &[Delivery<RiskInput>]) -> Result<(Vec<Outgoing>, Vec<Outcome>), String> {
        let control = self.control.borrow().clone();
        let mut out = RiskOutput::default();
        for d in batch {
            let o = match &d.msg {
                RiskInput::Decision(decision) => self.stage.on_decision(decision, &control),
                RiskInput::Request(request) => self.stage.on_request(request, &control),
                RiskInput::Report(report) => self.stage.on_report(report),
            };
            out.messages.extend(o.messages);
            out.alerts.extend(o.alerts);
        }
        let prepared = self.prepare(&out)?;
        self.count(&out);
        Ok((prepared, vec![Outcome::Done; batch.len()]))
    }

    fn checkpoint(&self) -> Result<Vec<u8>, String> {
        self.stage.snapshot()
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(250))
    }

    /// Operator commands act between decisions too: an emergency stop closes positions now.
    async fn on_tick(&mut self) -> Result<Option<Vec<Outgoing>>, String> {
        let control = self.control.borrow().clone();
        let out = self.stage.on_control(&control, now_ms());
        if out.messages.is_empty() && out.alerts.is_empty() {
            return Ok(None);
        }
        let prepared = self.prepare(&out)?;
        self.count(&out);
        Ok(Some(prepared))
    }
}

/// Makes the handler of each partition, restoring its checkpoint.
pub struct RiskFactory {
    pub accounts: Arc<Vec<AccountConfig>>,
    /// Partitions of `ens.decisions`: a partition's handler keeps the accounts whose profile
    /// is keyed to it.
    pub partitions: u32,
    pub producer: Producer,
    pub metrics: RiskMetrics,
    pub control: watch::Receiver<ControlState>,
}

impl HandlerFactory for RiskFactory {
    type Handler = StageHandler<RiskHandler>;

    fn create(&self, partition: u32, restored: Option<&[u8]>) -> Result<StageHandler<RiskHandler>, String> {
        let mine: Vec<AccountConfig> =
            self.accounts.iter().filter(|a| partition_of(&a.profile, self.partitions) == partition).cloned().collect();
        let mine = Arc::new(mine);
        let stage = match restored {
            Some(bytes) => RiskStage::restore(mine, bytes)?,
            None => RiskStage::new(mine),
        };
        Ok(StageHandler::new(RiskHandler {
            stage,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
        }))
    }
}
