//! Read queries for the edge's monitoring routes: the alerts among `system_events`.
//!
//! An alert is a row of `system_events` whose severity is one of [`ALERT_SEVERITIES`]
//! (candles refused by ingestion, account alerts from risk: circuit breaker, cooldown,
//! emergency stop). `info` rows (control commands, late signals, account resets) are events,
//! not alerts.

use serde::Serialize;

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Kind, Val};
use crate::store::AuditStore;

/// Severities that make a system event an alert, least severe first.
pub const ALERT_SEVERITIES: [&str; 3] = ["warning", "error", "critical"];

/// One alert row of `system_events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub id: String,
    pub kind: String,
    pub service: String,
    pub severity: String,
    pub message: String,
    /// JSON text.
    pub details: String,
    /// Epoch ms.
    pub time: i64,
}

const COLUMNS: &str = r#"id, kind, service, severity, message, details, "time""#;
const KINDS: [Kind; 7] = [Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int];

fn alert_of(cells: Vec<crate::rows::Cell>) -> Result<AlertEvent, AuditError> {
    let mut c = Cells::new("system_events", cells);
    Ok(AlertEvent {
        id: c.text()?,
        kind: c.text()?,
        service: c.text()?,
        severity: c.text()?,
        message: c.text()?,
        details: c.text()?,
        time: c.int()?,
    })
}

impl AuditStore {
    /// The newest `limit` alerts, newest first; only those of `severity` when given (which
    /// should be one of [`ALERT_SEVERITIES`]; another value matches nothing).
    pub async fn alert_events(&self, severity: Option<&str>, limit: i64) -> Result<Vec<AlertEvent>, AuditError> {
        let rows = match severity {
            Some(s) => {
                let sql = format!(
                    r#"SELECT {COLUMNS} FROM system_events WHERE severity IN ($1, $2, $3) AND severity = $4
                       ORDER BY "time" DESC, id DESC LIMIT $5"#
                );
                let [a, b, c] = ALERT_SEVERITIES;
                let binds = [Val::Text(a), Val::Text(b), Val::Text(c), Val::Text(s), Val::Int(limit)];
                self.select("system_events", &sql, &binds, &KINDS).await?
            }
            None => {
                let sql = format!(
                    r#"SELECT {COLUMNS} FROM system_events WHERE severity IN ($1, $2, $3)
                       ORDER BY "time" DESC, id DESC LIMIT $4"#
                );
                let [a, b, c] = ALERT_SEVERITIES;
                let binds = [Val::Text(a), Val::Text(b), Val::Text(c), Val::Int(limit)];
                self.select("system_events", &sql, &binds, &KINDS).await?
            }
        };
        rows.into_iter().map(alert_of).collect()
    }

    /// The alert of that id, `None` when there is none (or the event is not an alert).
    pub async fn alert_event(&self, id: &str) -> Result<Option<AlertEvent>, AuditError> {
        let sql = format!(r#"SELECT {COLUMNS} FROM system_events WHERE id = $1 AND severity IN ($2, $3, $4)"#);
        let [a, b, c] = ALERT_SEVERITIES;
        let rows = self
            .select("system_events", &sql, &[Val::Text(id), Val::Text(a), Val::Text(b), Val::Text(c)], &KINDS)
            .await?;
        rows.into_iter().next().map(alert_of).transpose()
    }
}
