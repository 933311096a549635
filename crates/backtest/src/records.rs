//! The audit rows a live run would have written for a backtest's messages: each message is
//! wrapped in the bus envelope and mapped by the audit store's own mapping
//! (`tradeflow_audit::mapping::rows_of`), so comparing a backtest with a live run compares the
//! very rows the live run stored.

use tradeflow_audit::mapping::rows_of;
use tradeflow_audit::{Row, Table};
use tradeflow_bus::Envelope;
use tradeflow_core::decision::Decision;
use tradeflow_core::execution::ExecEvent;
use tradeflow_core::order::RiskMessage;
use tradeflow_core::{MessageId, Payload};

use crate::sink::Sink;

/// Keeps the rows of `tables`; the first message that cannot be mapped is kept as the error.
#[derive(Debug, Default)]
pub struct Records {
    tables: Vec<Table>,
    pub rows: Vec<Row>,
    pub error: Option<String>,
}

impl Records {
    pub fn new(tables: &[Table]) -> Self {
        Self { tables: tables.to_vec(), rows: Vec::new(), error: None }
    }

    /// The rows of `table`, in the order they were produced.
    pub fn of(&self, table: Table) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.table() == table).collect()
    }

    fn keep<T: Payload>(&mut self, id: &str, key: &str, payload: &T) {
        if self.error.is_some() {
            return;
        }
        let mapped = MessageId::new(id.to_string())
            .map_err(|e| e.to_string())
            .and_then(|id| Envelope::wrap(&id, key, None, "backtest", payload).map_err(|e| e.to_string()))
            .and_then(|env| rows_of(&env.as_ref()).map_err(|e| e.to_string()));
        match mapped {
            Ok(rows) => self.rows.extend(rows.into_iter().filter(|r| self.tables.contains(&r.table()))),
            Err(e) => self.error = Some(format!("message {id}: {e}")),
        }
    }
}

impl Sink for Records {
    fn decision(&mut self, d: &Decision) {
        if self.tables.contains(&Table::Decision) {
            self.keep(d.id().as_str(), &d.profile, d);
        }
    }

    fn risk_message(&mut self, m: &RiskMessage) {
        match m {
            RiskMessage::Order(o) => self.keep(&o.id, &o.account, o),
            RiskMessage::Rejected(r) => self.keep(&r.id, &r.account, r),
            RiskMessage::Mark(k) => self.keep(&k.id, &k.account, k),
        }
    }

    fn exec_event(&mut self, e: &ExecEvent) {
        match e {
            ExecEvent::Fill(f) => self.keep(&f.id, &f.account, f),
            ExecEvent::Position(p) => self.keep(&p.id, &p.account, p),
            ExecEvent::Account(a) => self.keep(&a.id, &a.account, a),
        }
    }
}
