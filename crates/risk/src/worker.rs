//! The risk worker's bus handler: decisions and manual order requests of one `ens.decisions`
//! partition in; intents,
//! rejections and marks to `risk.orders` (key = account); account alerts to `audit.events`.
//!
//! Everything a batch produces goes out in the runner's MULTI/EXEC that acknowledges the batch
//! and checkpoints the account states: all of it or none. If that fails the partition restarts
//! from its checkpoint, so the batch sends the same messages with the same sequence numbers
//! again (and the executor ignores numbers it has applied).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
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
    /// Per account, as risk's book holds it after each batch (exact for paper accounts, the
    /// last exchange report for exchange accounts): `tradeflow_risk_account_*` by `figure`
    /// (equity, balance, unrealized_pnl, realized_pnl, margin_used, all in quote), open
    /// positions, drawdown from the peak and circuit-breaker state.
    pub account: AccountGauges,
}

/// The account figures of [`RiskMetrics`], labelled by account only (bounded by the accounts
/// file).
#[derive(Clone)]
pub struct AccountGauges {
    /// `tradeflow_risk_account_quote{account,figure}`.
    pub quote: GaugeVec,
    /// `tradeflow_risk_open_positions{account}`.
    pub open_positions: GaugeVec,
    /// `tradeflow_risk_drawdown_ratio{account}`: 1 - equity / peak equity, 0..1.
    pub drawdown: GaugeVec,
    /// `tradeflow_risk_circuit_breaker_tripped{account}`: 1 while the account is halted by its
    /// drawdown circuit breaker (until reset), else 0.
    pub halted: GaugeVec,
}

/// The `figure` label values of `tradeflow_risk_account_quote`.
const FIGURES: [&str; 5] = ["equity", "balance", "unrealized_pnl", "realized_pnl", "margin_used"];
/// Outcomes and alert kinds every account starts at 0, so that the first of each shows as an
/// increase (a counter first seen at 1 has no increase to alert on) and panels have a series.
const OUTCOMES: [&str; 3] = ["order", "rejected", "mark"];
const ALERT_KINDS: [&str; 4] = ["circuit_breaker", "cooldown", "emergency_stop", "reset"];
/// The refusals the alert rules watch (grafana/prometheus/alerts.yml), likewise from 0.
const WATCHED_REFUSALS: [&str; 2] = ["daily_loss_limit", "halted"];

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
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let account = AccountGauges {
            quote: gauge(
                "tradeflow_risk_account_quote",
                "Account figures in quote currency as risk holds them, by account and figure (equity, balance, unrealized_pnl, realized_pnl, margin_used).",
                &["account", "figure"],
            )?,
            open_positions: gauge("tradeflow_risk_open_positions", "Open positions, by account.", &["account"])?,
            drawdown: gauge(
                "tradeflow_risk_drawdown_ratio",
                "Drawdown of equity from its peak (0..1), by account; the peak is the highest of the starting balance and the equity this worker has seen.",
                &["account"],
            )?,
            halted: gauge(
                "tradeflow_risk_circuit_breaker_tripped",
                "1 while the account's drawdown circuit breaker holds it halted (until reset), else 0.",
                &["account"],
            )?,
        };
        Ok(Self { messages, rejections, alerts, account })
    }

    /// Every labelled series of `accounts` at 0, before their first message.
    fn start(&self, accounts: &[AccountConfig]) {
        for a in accounts {
            let id = a.id.as_str();
            for outcome in OUTCOMES {
                self.messages.with_label_values(&[id, outcome]);
            }
            for kind in ALERT_KINDS {
                self.alerts.with_label_values(&[id, kind]);
            }
            for reason in WATCHED_REFUSALS {
                self.rejections.with_label_values(&[id, reason]);
            }
        }
    }
}

/// The risk stage as its worker drives it (through [`StageHandler`]).
pub struct RiskHandler {
    stage: RiskStage,
    producer: Producer,
    metrics: RiskMetrics,
    control: watch::Receiver<ControlState>,
    /// The accounts of this partition and the highest equity seen for each (from the starting
    /// balance), for the drawdown gauge. The stage keeps its own peak for the circuit breaker;
    /// this one restarts when a worker takes the partition over.
    peaks: BTreeMap<String, f64>,
}

impl RiskHandler {
    /// The account gauges, from the stage's books after a batch or tick.
    fn observe(&mut self) {
        let gauges = &self.metrics.account;
        for (id, peak) in self.peaks.iter_mut() {
            let (Some(view), Some(book)) = (self.stage.view(id), self.stage.book(id)) else { continue };
            let figures = [view.equity, view.balance, book.unrealized_pnl(), book.realized_pnl(), book.margin_used()];
            for (figure, value) in FIGURES.iter().zip(figures) {
                gauges.quote.with_label_values(&[id.as_str(), figure]).set(value);
            }
            gauges.open_positions.with_label_values(&[id.as_str()]).set(view.open_positions as f64);
            *peak = peak.max(view.equity);
            let drawdown = if *peak > 0.0 { ((*peak - view.equity) / *peak).max(0.0) } else { 0.0 };
            gauges.drawdown.with_label_values(&[id.as_str()]).set(drawdown);
            gauges.halted.with_label_values(&[id.as_str()]).set(if view.halted { 1.0 } else { 0.0 });
        }
    }
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
        self.observe();
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
        // Also puts back the gauges a dropped handler of this partition removed (see Drop).
        self.observe();
        if out.messages.is_empty() && out.alerts.is_empty() {
            return Ok(None);
        }
        let prepared = self.prepare(&out)?;
        self.count(&out);
        Ok(Some(prepared))
    }
}

/// A partition this worker no longer holds (lease lost, released, restarted) takes its
/// accounts' gauges with it: the member that holds it now reports them, and a stale copy here
/// would double them in sums and hide changes in max().
impl Drop for RiskHandler {
    fn drop(&mut self) {
        let gauges = &self.metrics.account;
        for id in self.peaks.keys() {
            for figure in FIGURES {
                let _ = gauges.quote.remove_label_values(&[id.as_str(), figure]);
            }
            for g in [&gauges.open_positions, &gauges.drawdown, &gauges.halted] {
                let _ = g.remove_label_values(&[id.as_str()]);
            }
        }
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
        self.metrics.start(&mine);
        let peaks = mine.iter().map(|a| (a.id.clone(), a.starting_balance)).collect();
        let stage = match restored {
            Some(bytes) => RiskStage::restore(mine, bytes)?,
            None => RiskStage::new(mine),
        };
        let mut handler = RiskHandler {
            stage,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
            peaks,
        };
        handler.observe();
        Ok(StageHandler::new(handler))
    }
}
