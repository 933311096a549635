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
use tracing::error;
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::keys::partition_of;
use tradeflow_bus::{Delivery, EnvelopeRef, Handler, HandlerFactory, Outcome, Outgoing, Producer, Tick};
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

pub struct RiskHandler {
    stage: RiskStage,
    producer: Producer,
    /// Risk messages and alerts for the runner to send with the acknowledgement.
    outbox: Vec<Outgoing>,
    metrics: RiskMetrics,
    control: watch::Receiver<ControlState>,
}

impl RiskHandler {
    /// Encodes a batch's (or tick's) output into the outbox; nothing is added on an error.
    fn publish(&mut self, out: &RiskOutput) -> Result<(), String> {
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
        self.outbox.append(&mut batch);
        Ok(())
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

impl Handler for RiskHandler {
    type Msg = RiskInput;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<RiskInput, DecodeError> {
        if envelope.kind == OrderRequest::KIND {
            envelope.open::<OrderRequest>().map(RiskInput::Request)
        } else if envelope.kind == AccountReport::KIND {
            envelope.open::<AccountReport>().map(RiskInput::Report)
        } else {
            envelope.open::<Decision>().map(RiskInput::Decision)
        }
    }

    async fn handle(&mut self, delivery: &Delivery<RiskInput>) -> Outcome {
        let mut outcomes = self.handle_batch(std::slice::from_ref(delivery)).await;
        outcomes.pop().unwrap_or(Outcome::Retry("no outcome".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<RiskInput>]) -> Vec<Outcome> {
        let before = self.stage.clone();
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
        if let Err(e) = self.publish(&out) {
            self.stage = before;
            return batch.iter().map(|_| Outcome::Retry(format!("encoding risk messages: {e}"))).collect();
        }
        self.count(&out);
        vec![Outcome::Done; batch.len()]
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        match self.stage.snapshot() {
            Ok(s) => Some(s),
            Err(e) => {
                error!(error = %e, "no checkpoint written");
                None
            }
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(250))
    }

    fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Operator commands act between decisions too: an emergency stop closes positions now.
    async fn tick(&mut self) -> Tick {
        let control = self.control.borrow().clone();
        let before = self.stage.clone();
        let out = self.stage.on_control(&control, now_ms());
        if out.messages.is_empty() && out.alerts.is_empty() {
            return Tick::Unchanged;
        }
        if let Err(e) = self.publish(&out) {
            error!(error = %e, "encoding control actions failed; retried at the next tick");
            self.stage = before;
            return Tick::Unchanged;
        }
        self.count(&out);
        Tick::Changed
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
    type Handler = RiskHandler;

    fn create(&self, partition: u32, restored: Option<&[u8]>) -> Result<RiskHandler, String> {
        let mine: Vec<AccountConfig> =
            self.accounts.iter().filter(|a| partition_of(&a.profile, self.partitions) == partition).cloned().collect();
        let mine = Arc::new(mine);
        let stage = match restored {
            Some(bytes) => RiskStage::restore(mine, bytes)?,
            None => RiskStage::new(mine),
        };
        Ok(RiskHandler {
            stage,
            producer: self.producer.clone(),
            outbox: Vec::new(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
        })
    }
}
