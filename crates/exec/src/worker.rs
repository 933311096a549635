//! The execution worker's bus handler: `risk.orders` of one partition in, `exec.fills` out
//! (key = account). A batch's events go out in the runner's MULTI/EXEC that acknowledges it and
//! checkpoints the books; if that fails the partition restarts from its checkpoint and the
//! batch is handled again (the desk finds its exchange orders by client id).
//!
//! Exchange accounts also report to risk what the exchange holds ([`crate::report`]): after
//! every message that filled, and every `reconcile_every` read from the exchange by the
//! partition that holds the account (a tick). Reports go on `ens.decisions` under the
//! account's profile, risk's input partition for that account; a reading that fails is
//! logged and tried again one interval later (an exchange that is down is not asked every second).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, exponential_buckets};
use tracing::{info, warn};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, EnvelopeRef, HandlerFactory, Outcome, Outgoing, Producer, StageHandler, StageLogic};
use tradeflow_core::MessageId;
use tradeflow_core::Payload;
use tradeflow_core::execution::ExecEvent;
use tradeflow_core::order::{Mark, OrderIntent, Rejection, RiskMessage};

use crate::exchange::{DeskState, ExchangeAccount, ExchangeDesk, ExchangeError};
use crate::stage::{ExecAccount, ExecError, ExecStage};

/// The checkpoint: paper books and exchange accounts.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    #[serde(with = "serde_bytes")]
    paper: Vec<u8>,
    exchange: DeskState,
}

pub const FILLS: &str = "exec.fills";
/// The execution stage's input stream (key = account).
pub const ORDERS: &str = "risk.orders";
/// Risk's input stream, where exchange reports go (keyed by the account's profile).
pub const REPORTS: &str = "ens.decisions";
/// How often a partition looks for reconciliations that are due.
const RECONCILE_CHECK: Duration = Duration::from_secs(1);

/// Decodes any message of `risk.orders`.
pub fn decode_risk_message(envelope: &EnvelopeRef<'_>) -> Result<RiskMessage, DecodeError> {
    match envelope.kind {
        OrderIntent::KIND => envelope.open::<OrderIntent>().map(RiskMessage::Order),
        Rejection::KIND => envelope.open::<Rejection>().map(RiskMessage::Rejected),
        Mark::KIND => envelope.open::<Mark>().map(RiskMessage::Mark),
        other => Err(DecodeError::UnexpectedKind {
            expected: format!("{} | {} | {}", OrderIntent::KIND, Rejection::KIND, Mark::KIND),
            got: other.into(),
        }),
    }
}

/// `tradeflow_exec_*` metrics.
#[derive(Clone)]
pub struct ExecMetrics {
    /// Fills by account and reason (entry, exit, stop_loss, ...).
    pub fills: IntCounterVec,
    /// Fees paid, by account.
    pub fees: CounterVec,
    /// Messages seen again and ignored, by account.
    pub duplicates: IntCounterVec,
    /// Seconds from a live bar's close to its fills leaving the executor, by account (see
    /// [`candle_to_fill`]).
    pub candle_to_fill: HistogramVec,
}

/// The age of `bar` when its fills go out, in seconds, if the bar is live: closed at most two
/// of its intervals ago. A replayed or backfilled bar closed long ago (years, for the demo
/// feed), and its age says nothing about the pipeline, so it is not observed. This is candle
/// close → fill out: the candle's time is its close (ingest publishes a bar once it closed),
/// so it also holds how late the feed delivered the closed bar.
pub fn candle_to_fill(bar: &tradeflow_core::order::BarMark, now_ms: i64) -> Option<f64> {
    let age = now_ms - bar.close_time;
    let interval = (bar.close_time - bar.open_time).max(1);
    (0..=2 * interval).contains(&age).then(|| age as f64 / 1000.0)
}

impl ExecMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let fills = IntCounterVec::new(
            Opts::new("tradeflow_exec_fills_total", "Fills, by account and reason."),
            &["account", "reason"],
        )?;
        let fees = CounterVec::new(
            Opts::new("tradeflow_exec_fees_quote_total", "Fees paid in quote currency, by account."),
            &["account"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new("tradeflow_exec_duplicates_total", "risk.orders messages already applied, by account."),
            &["account"],
        )?;
        // 1 ms to about 65 s: the benchmark's p99 is a few ms, a live feed adds its delivery.
        let candle_to_fill = HistogramVec::new(
            HistogramOpts::new(
                "tradeflow_exec_candle_to_fill_seconds",
                "Seconds from a live bar's close to its fills leaving the executor, by account (replayed bars are not observed).",
            )
            .buckets(exponential_buckets(0.001, 2.0, 17)?),
            &["account"],
        )?;
        registry.register(Box::new(fills.clone()))?;
        registry.register(Box::new(fees.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(candle_to_fill.clone()))?;
        Ok(Self { fills, fees, duplicates, candle_to_fill })
    }
}

/// The execution stage (paper books and exchange desk) as its worker drives it (through
/// [`StageHandler`]).
pub struct ExecHandler {
    stage: ExecStage,
    desk: ExchangeDesk,
    producer: Producer,
    metrics: ExecMetrics,
    /// Exchange accounts of this partition → when they were last read from the exchange
    /// (`None`: not yet; read at the first tick).
    reconciled: BTreeMap<String, Option<Instant>>,
}

impl ExecHandler {
    /// The exchange accounts of this partition whose reconciliation is due.
    fn due(&self) -> Vec<String> {
        self.reconciled
            .iter()
            .filter(|(id, last)| {
                let every = self.desk.account(id).and_then(|a| a.reconcile_every);
                every.is_some_and(|every| last.is_none_or(|t| t.elapsed() >= every))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// `report` on `ens.decisions`, under its account's profile.
    fn prepare_report(&self, report: &tradeflow_core::report::AccountReport) -> Result<Outgoing, String> {
        let profile = self.desk.account(&report.account).map(|a| a.profile.as_str()).unwrap_or_default();
        self.producer.prepare(REPORTS, &report.message_id(), profile, None, report).map_err(|e| e.to_string())
    }

    fn prepare(&self, events: &[ExecEvent], out: &mut Vec<Outgoing>) -> Result<(), String> {
        for e in events {
            let id = MessageId::new(e.id()).map_err(|err| format!("event id {:?}: {err}", e.id()))?;
            let prepared = match e {
                ExecEvent::Fill(f) => self.producer.prepare(FILLS, &id, &f.account, None, f),
                ExecEvent::Position(p) => self.producer.prepare(FILLS, &id, &p.account, None, p),
                ExecEvent::Account(a) => self.producer.prepare(FILLS, &id, &a.account, None, a),
            };
            out.push(prepared.map_err(|err| err.to_string())?);
        }
        Ok(())
    }
}

impl StageLogic for ExecHandler {
    type Msg = RiskMessage;
    /// The paper books and the desk's record of exchange orders (what a checkpoint holds).
    type Saved = (ExecStage, DeskState);

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<RiskMessage, DecodeError> {
        decode_risk_message(envelope)
    }

    fn save(&self) -> (ExecStage, DeskState) {
        (self.stage.clone(), self.desk.state.clone())
    }

    fn restore(&mut self, (stage, desk): (ExecStage, DeskState)) {
        (self.stage, self.desk.state) = (stage, desk);
    }

    async fn run(&mut self, batch: &[Delivery<RiskMessage>]) -> Result<(Vec<Outgoing>, Vec<Outcome>), String> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut duplicates = Vec::new();
        let mut reports = Vec::new();
        for d in batch {
            let result = if self.desk.handles(d.msg.account()) {
                let done = self.desk.on_message(&d.msg).await;
                if let Ok(o) = &done
                    && let Some(r) = self.desk.fills_report(d.msg.account(), d.msg.seq(), &o.events)
                {
                    reports.push(r);
                }
                done.map_err(Failure::Exchange)
            } else {
                self.stage.on_message(&d.msg).map_err(Failure::Paper)
            };
            match result {
                Ok(o) => {
                    let fills = o.events.iter().filter(|e| matches!(e, ExecEvent::Fill(_))).count();
                    if fills > 0
                        && let Some(age) = candle_to_fill(d.msg.bar(), tradeflow_core::time::now_ms())
                    {
                        let h = self.metrics.candle_to_fill.with_label_values(&[d.msg.account()]);
                        (0..fills).for_each(|_| h.observe(age));
                    }
                    if o.duplicate {
                        duplicates.push(d.msg.account().to_string());
                    }
                    events.extend(o.events);
                    outcomes.push(Outcome::Done);
                }
                // Neither can succeed by retrying: the message goes to the DLQ, the rest of
                // the batch goes on.
                Err(Failure::Paper(e @ (ExecError::UnknownAccount { .. } | ExecError::Gap { .. }))) => {
                    outcomes.push(Outcome::Reject(e.to_string()))
                }
                Err(Failure::Exchange(ExchangeError::Refused(e))) => outcomes.push(Outcome::Reject(e)),
                // The order keeps its client id, so the retry finds it if it was placed.
                Err(Failure::Exchange(ExchangeError::Retry(e))) => outcomes.push(Outcome::Retry(e)),
            }
        }
        let mut out = Vec::with_capacity(events.len() + reports.len());
        self.prepare(&events, &mut out).map_err(|e| format!("encoding fills: {e}"))?;
        for r in &reports {
            out.push(self.prepare_report(r).map_err(|e| format!("encoding an exchange report: {e}"))?);
        }
        for e in &events {
            if let ExecEvent::Fill(f) = e {
                self.metrics.fills.with_label_values(&[f.account.as_str(), f.reason.as_str()]).inc();
                self.metrics.fees.with_label_values(&[f.account.as_str()]).inc_by(f.fee.max(0.0));
            }
        }
        for a in duplicates {
            self.metrics.duplicates.with_label_values(&[a.as_str()]).inc();
        }
        Ok((out, outcomes))
    }

    fn tick_interval(&self) -> Option<Duration> {
        (!self.reconciled.is_empty()).then_some(RECONCILE_CHECK)
    }

    fn tick_due(&self) -> bool {
        !self.due().is_empty()
    }

    /// Reads the exchange for the accounts whose reconciliation is due; the reports go out
    /// with a checkpoint (the desk's state does not change). An account whose reading fails
    /// is logged and read again one interval later; the others' reports go out.
    async fn on_tick(&mut self) -> Result<Option<Vec<Outgoing>>, String> {
        let mut out = Vec::new();
        for id in self.due() {
            self.reconciled.insert(id.clone(), Some(Instant::now()));
            let read = self.desk.read_exchange(&id, tradeflow_core::time::now_ms()).await;
            match read.map_err(|e| e.to_string()).and_then(|r| self.prepare_report(&r).map(|o| (r, o))) {
                Ok((r, o)) => {
                    info!(account = %id, balance = r.balance, positions = r.positions.len(), "exchange read for reconciliation");
                    out.push(o);
                }
                Err(e) => {
                    warn!(account = %id, error = %e, "reconciliation with the exchange failed; tried again at the next interval")
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn checkpoint(&self) -> Result<Vec<u8>, String> {
        let paper = self.stage.snapshot()?;
        rmp_serde::to_vec_named(&Checkpoint { paper, exchange: self.desk.state.clone() })
            .map_err(|e| format!("encoding the exec checkpoint: {e}"))
    }
}

pub struct ExecFactory {
    pub accounts: Vec<ExecAccount>,
    pub exchange: Vec<ExchangeAccount>,
    pub producer: Producer,
    pub metrics: ExecMetrics,
}

impl HandlerFactory for ExecFactory {
    type Handler = StageHandler<ExecHandler>;

    fn create(&self, partition: u32, restored: Option<&[u8]>) -> Result<StageHandler<ExecHandler>, String> {
        let (stage, desk) = match restored {
            Some(bytes) => {
                let c: Checkpoint =
                    rmp_serde::from_slice(bytes).map_err(|e| format!("decoding the exec checkpoint: {e}"))?;
                (ExecStage::restore(&self.accounts, &c.paper)?, c.exchange)
            }
            None => (ExecStage::new(&self.accounts), DeskState::default()),
        };
        // The exchange accounts whose messages this partition gets: it reconciles them.
        let partitions =
            self.producer.bus().topology().stream(crate::worker::ORDERS).map_err(|e| e.to_string())?.partitions;
        let reconciled = self
            .exchange
            .iter()
            .filter(|a| {
                a.reconcile_every.is_some() && tradeflow_bus::keys::partition_of(&a.id, partitions) == partition
            })
            .map(|a| (a.id.clone(), None))
            .collect();
        // Each account's latency series exists from the start (no observation yet), so the
        // dashboards and the alert rule have it before the first live fill.
        for id in self.accounts.iter().map(|a| &a.id).chain(self.exchange.iter().map(|a| &a.id)) {
            self.metrics.candle_to_fill.with_label_values(&[id.as_str()]);
        }
        let desk = ExchangeDesk::new(self.exchange.clone(), desk);
        Ok(StageHandler::new(ExecHandler {
            reconciled,
            stage,
            desk,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
        }))
    }
}

enum Failure {
    Paper(ExecError),
    Exchange(ExchangeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(open_time: i64, close_time: i64) -> tradeflow_core::order::BarMark {
        tradeflow_core::order::BarMark {
            symbol: "BTC".into(),
            open_time,
            close_time,
            open: None,
            high: 1.0,
            low: 1.0,
            close: 1.0,
        }
    }

    #[test]
    fn only_live_bars_are_timed_from_their_close() {
        let minute = bar(0, 60_000);
        assert_eq!(candle_to_fill(&minute, 60_250), Some(0.25));
        assert_eq!(candle_to_fill(&minute, 180_000), Some(120.0), "two intervals late is still live");
        assert_eq!(candle_to_fill(&minute, 180_001), None, "a replayed bar is not timed");
        assert_eq!(candle_to_fill(&minute, 59_000), None, "a bar from the future is not timed");
    }
}
