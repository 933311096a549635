//! From bus messages to audit rows: one function per payload kind, so the audit worker stays a
//! thin loop. Rows carry the message id as their primary key; derived rows (the trading log,
//! system events) get the message id with a suffix, so a redelivery maps to the same rows.

use serde::Serialize;
use tradeflow_bus::{DecodeError, EnvelopeRef};
use tradeflow_core::Payload;
use tradeflow_core::control::{AuditRecord, ControlCommand, CycleEvent};
use tradeflow_core::decision::{Decision, LateSignal};
use tradeflow_core::execution::{AccountUpdate, Fill, PositionUpdate};
use tradeflow_core::job::{JobEvent, JobRequest, JobState};
use tradeflow_core::market::{Candle, CandleRefused};
use tradeflow_core::news::NewsItem;
use tradeflow_core::order::{AccountAlert, Intent, Mark, OrderIntent, Rejection};
use tradeflow_core::report::{AccountReport, ReportKind};
use tradeflow_core::request::{OrderRequest, RequestSize};
use tradeflow_core::signal::{ModelKind, Signal, SignalStatus};

use crate::rows::{
    AuditLogRow, BalanceRow, CandleRow, DecisionRow, FillRow, JobEventRow, JobRow, NewsRow, OrderRow, PositionRow,
    RejectionRow, Row, SignalRow, SystemEventRow, TradingLogRow,
};

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"unserialisable\": {:?}}}", e.to_string()))
}

fn model_kind(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Rule => "rule",
        ModelKind::Ml => "ml",
        ModelKind::Llm => "llm",
    }
}

/// The rows of one message. Kinds the store does not keep (marks) give none; unknown kinds
/// are an error (the message goes to the DLQ with the reason, never silently dropped).
pub fn rows_of(env: &EnvelopeRef<'_>) -> Result<Vec<Row>, DecodeError> {
    // Only system events name the producer: no copy of it for the other nine rows in ten.
    let service = || env.producer.to_string();
    let t = env.produced_at;
    Ok(match env.kind {
        Candle::KIND => {
            let c: Candle = env.open()?;
            vec![Row::Candle(CandleRow {
                id: c.id().into_string(),
                source: c.source.clone(),
                symbol: c.symbol.clone(),
                interval: c.interval.as_str().into(),
                open_time: c.bar.open_time(),
                open: c.bar.open(),
                high: c.bar.high(),
                low: c.bar.low(),
                close: c.bar.close(),
                volume: c.bar.volume(),
            })]
        }
        CandleRefused::KIND => {
            let r: CandleRefused = env.open()?;
            vec![Row::SystemEvent(SystemEventRow {
                id: r.id().into_string(),
                kind: "candle_refused".into(),
                service: service(),
                severity: "warning".into(),
                message: format!(
                    "{} {} {}: {} ({})",
                    r.source,
                    r.symbol,
                    r.interval.as_str(),
                    r.reason,
                    r.kind.as_str()
                ),
                details: json(&r),
                time: t,
            })]
        }
        Signal::KIND => {
            // Signals and decisions are seven of a candle's ten rows: their strings are moved
            // into the row, not copied.
            let s: Signal = env.open()?;
            let id = s.id().into_string();
            let (status, error) = match s.status {
                SignalStatus::Ok => ("ok", None),
                SignalStatus::Error { reason } => ("error", Some(reason)),
            };
            vec![Row::Signal(SignalRow {
                id,
                candle_id: s.candle_id,
                symbol: s.symbol,
                interval: s.interval.as_str().into(),
                open_time: s.open_time,
                model: s.model,
                model_kind: model_kind(s.model_kind).into(),
                action: s.action.as_str().into(),
                confidence: s.confidence,
                status: status.into(),
                error,
                reasoning: s.reasoning,
                scores: json(&s.scores),
                features: json(&s.features),
                market: json(&s.market),
                stop_loss: s.stop_loss,
                take_profit: s.take_profit,
                latency_us: s.latency_us.min(i64::MAX as u64) as i64,
            })]
        }
        LateSignal::KIND => {
            let l: LateSignal = env.open()?;
            vec![Row::SystemEvent(SystemEventRow {
                id: l.id().into_string(),
                kind: "signal_late".into(),
                service: service(),
                severity: "info".into(),
                message: format!("signal {} came after its candle was decided", l.signal_id),
                details: json(&l),
                time: t,
            })]
        }
        Decision::KIND => {
            let d: Decision = env.open()?;
            vec![Row::Decision(DecisionRow {
                id: d.id().into_string(),
                trigger: format!("{:?}", d.trigger).to_lowercase(),
                missing: json(&d.missing),
                contributions: json(&d.contributions),
                candle_id: d.candle_id,
                symbol: d.symbol,
                interval: d.interval.as_str().into(),
                open_time: d.open_time,
                profile: d.profile,
                action: d.action.as_str().into(),
                confidence: d.confidence,
                reasoning: d.reasoning,
                stop_loss: d.stop_loss,
                take_profit: d.take_profit,
            })]
        }
        AccountReport::KIND => {
            // What the exchange said the account holds; risk's alert says where it differed.
            let r: AccountReport = env.open()?;
            let after = match r.kind {
                ReportKind::Fills { seq } => format!("after message {seq}"),
                ReportKind::Reconcile => "reconciliation".to_string(),
            };
            vec![Row::TradingLog(TradingLogRow {
                id: format!("{}/log", r.id),
                account: r.account.clone(),
                symbol: None,
                action: "exchange_report".into(),
                details: format!(
                    "exchange report ({after}): balance {}, {} positions, {} fills: {}",
                    r.balance,
                    r.positions.len(),
                    r.fills.len(),
                    json(&r)
                ),
                time: r.time,
            })]
        }
        OrderRequest::KIND => {
            // The request itself; risk's answer (an order or a refusal) has the rows of its own.
            let r: OrderRequest = env.open()?;
            let size = match r.size {
                RequestSize::Account => "sized by the account".to_string(),
                RequestSize::Quantity { quantity } => format!("quantity {quantity}"),
                RequestSize::Notional { notional } => format!("notional {notional}"),
                RequestSize::Fraction { fraction } => format!("{fraction} of the position"),
            };
            let limit = r.limit_price.map(|l| format!(" at {l}")).unwrap_or_default();
            let reduce = if r.reduce_only { ", reduce-only" } else { "" };
            vec![Row::TradingLog(TradingLogRow {
                id: format!("{}/log", r.id),
                account: r.account.clone(),
                symbol: Some(r.symbol.clone()),
                action: "order_requested".into(),
                details: format!(
                    "{} {} {}{limit}, {size}{reduce}, by {} (client id {}): {}",
                    r.order_type.as_str(),
                    r.side.as_str(),
                    r.symbol,
                    r.requested_by,
                    r.client_id,
                    json(&r)
                ),
                time: r.requested_at,
            })]
        }
        OrderIntent::KIND => {
            let o: OrderIntent = env.open()?;
            let action = match o.intent {
                Intent::Open => format!("open_{}", o.direction.as_str()),
                Intent::Close => "close_position".into(),
                Intent::Reduce => "reduce_position".into(),
            };
            vec![
                Row::TradingLog(TradingLogRow {
                    id: format!("{}/log", o.id),
                    account: o.account.clone(),
                    symbol: Some(o.bar.symbol.clone()),
                    action,
                    details: format!(
                        "{} {} {} @ ~{}: {}",
                        o.side.as_str(),
                        o.quantity,
                        o.bar.symbol,
                        o.bar.close,
                        o.reason
                    ),
                    time: o.bar.close_time,
                }),
                Row::Order(OrderRow {
                    id: o.id.clone(),
                    decision_id: o.decision_id.clone(),
                    account: o.account.clone(),
                    symbol: o.bar.symbol.clone(),
                    side: o.side.as_str().into(),
                    order_type: o.order_type.as_str().into(),
                    intent: o.intent.as_str().into(),
                    quantity: o.quantity,
                    limit_price: o.limit_price,
                    reference_price: o.bar.close,
                    leverage: o.leverage,
                    stop_loss: o.stop_loss,
                    take_profit: o.take_profit,
                    trailing_stop_pct: o.trailing_stop_pct,
                    seq: o.seq as i64,
                    time: o.bar.close_time,
                }),
            ]
        }
        Rejection::KIND => {
            let r: Rejection = env.open()?;
            vec![
                Row::TradingLog(TradingLogRow {
                    id: format!("{}/log", r.id),
                    account: r.account.clone(),
                    symbol: Some(r.bar.symbol.clone()),
                    action: "trade_rejected".into(),
                    details: format!("{} refused: {}", r.action.as_str(), r.reason),
                    time: r.bar.close_time,
                }),
                Row::Rejection(RejectionRow {
                    id: r.id.clone(),
                    decision_id: r.decision_id.clone(),
                    account: r.account.clone(),
                    symbol: r.bar.symbol.clone(),
                    action: r.action.as_str().into(),
                    reason: r.reason.code().into(),
                    message: r.reason.to_string(),
                    seq: r.seq as i64,
                    time: r.bar.close_time,
                }),
            ]
        }
        Mark::KIND => Vec::new(),
        Fill::KIND => {
            let f: Fill = env.open()?;
            vec![Row::Fill(FillRow {
                id: f.id.clone(),
                order_id: f.order_id.clone(),
                account: f.account.clone(),
                symbol: f.symbol.clone(),
                side: f.side.as_str().into(),
                quantity: f.quantity,
                price: f.price,
                fee: f.fee,
                realized_pnl: f.realized_pnl,
                liquidity: f.liquidity.as_str().into(),
                reason: f.reason.as_str().into(),
                seq: f.seq as i64,
                time: f.time,
            })]
        }
        PositionUpdate::KIND => {
            let p: PositionUpdate = env.open()?;
            vec![Row::Position(PositionRow {
                id: p.id.clone(),
                account: p.account.clone(),
                symbol: p.symbol.clone(),
                side: p.direction.as_str().into(),
                quantity: p.quantity,
                entry_price: p.entry_price,
                mark_price: p.mark_price,
                unrealized_pnl: p.unrealized_pnl,
                liquidation_price: p.liquidation_price,
                stop_loss: p.stop_loss.or(p.trailing_stop),
                take_profit: p.take_profit,
                status: p.status.as_str().into(),
                seq: p.seq as i64,
                time: p.time,
            })]
        }
        AccountUpdate::KIND => {
            let a: AccountUpdate = env.open()?;
            vec![Row::Balance(BalanceRow {
                id: a.id.clone(),
                account: a.account.clone(),
                balance: a.balance,
                equity: a.equity,
                margin_used: a.margin_used,
                unrealized_pnl: a.unrealized_pnl,
                realized_pnl: a.realized_pnl,
                fees: a.fees,
                open_positions: a.open_positions as i64,
                seq: a.seq as i64,
                time: a.time,
            })]
        }
        AccountAlert::KIND => {
            let a: AccountAlert = env.open()?;
            let action = match a.kind.as_str() {
                "circuit_breaker" => "auto_pause",
                "cooldown" => "cooldown",
                "emergency_stop" => "emergency_stop",
                "close_all" => "close_all",
                _ => "account_reset",
            };
            vec![
                Row::TradingLog(TradingLogRow {
                    id: format!("{}/log", a.id),
                    account: a.account.clone(),
                    symbol: None,
                    action: action.into(),
                    details: a.message.clone(),
                    time: a.time,
                }),
                Row::SystemEvent(SystemEventRow {
                    id: a.id.clone(),
                    kind: a.kind.clone(),
                    service: service(),
                    severity: if a.kind == "reset" { "info".into() } else { "warning".into() },
                    message: format!("{}: {}", a.account, a.message),
                    details: json(&a),
                    time: a.time,
                }),
            ]
        }
        ControlCommand::KIND => {
            let c: ControlCommand = env.open()?;
            vec![
                Row::Audit(AuditLogRow {
                    id: c.id.clone(),
                    actor: c.actor.clone(),
                    action: c.command.name().into(),
                    resource: "ctl.commands".into(),
                    ip: c.ip.clone(),
                    status: "accepted".into(),
                    details: json(&c.command),
                    time: c.issued_at,
                }),
                Row::SystemEvent(SystemEventRow {
                    id: format!("{}/event", c.id),
                    kind: "control_command".into(),
                    service: service(),
                    severity: "info".into(),
                    message: format!("{} by {}", c.command.name(), c.actor),
                    details: json(&c.command),
                    time: c.issued_at,
                }),
            ]
        }
        CycleEvent::KIND => {
            let e: CycleEvent = env.open()?;
            let what = match e.phase {
                tradeflow_core::control::CyclePhase::Start => {
                    format!("{} signals from {}", e.models.len(), e.models.join(", "))
                }
                tradeflow_core::control::CyclePhase::Complete => format!("decided by {}", e.decided.join(", ")),
            };
            vec![Row::SystemEvent(SystemEventRow {
                id: e.message_id().into_string(),
                kind: e.phase.event_type().into(),
                service: service(),
                severity: "info".into(),
                message: format!("analysis cycle {} on {}: {what}", e.cycle, e.symbol),
                details: json(&e),
                time: e.time,
            })]
        }
        AuditRecord::KIND => {
            let a: AuditRecord = env.open()?;
            vec![Row::Audit(AuditLogRow {
                id: a.id,
                actor: a.actor,
                action: a.action,
                resource: a.resource,
                ip: a.ip,
                status: a.status,
                details: a.details,
                time: a.time,
            })]
        }
        NewsItem::KIND => {
            let n: NewsItem = env.open()?;
            vec![Row::News(NewsRow {
                title_key: n.title_key(),
                symbols: n.symbols.join(","),
                id: n.id,
                source: n.source,
                title: n.title,
                link: n.link,
                summary: n.summary,
                published_at: n.published_at,
                fetched_at: n.fetched_at,
            })]
        }
        JobRequest::KIND => {
            let r: JobRequest = env.open()?;
            vec![Row::Job(JobRow {
                id: r.task_id,
                kind: r.kind.name().into(),
                state: JobState::Queued.name().into(),
                attempt: 0,
                submitted_by: r.submitted_by,
                role: r.role,
                submitted_at: r.submitted_at,
                params: r.params,
            })]
        }
        JobEvent::KIND => {
            let e: JobEvent = env.open()?;
            // Progress reports are for watchers; the jobs table holds the latest one.
            if e.progress.is_some() {
                return Ok(Vec::new());
            }
            vec![Row::JobEventRecord(JobEventRow {
                id: e.message_id().to_string(),
                task_id: e.task_id,
                kind: e.kind.name().into(),
                attempt: i64::from(e.attempt),
                state: e.state.name().into(),
                error: e.error,
                worker: e.worker,
                time: e.at,
            })]
        }
        other => {
            return Err(DecodeError::UnexpectedKind {
                expected: "a kind the audit store keeps".into(),
                got: other.into(),
            });
        }
    })
}
