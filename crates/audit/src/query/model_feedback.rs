//! Users' ratings of learned models' signals (`model_feedback`, migration 0007): one per
//! (model, signal, user), a later rating replacing the earlier, and the signals they rate.

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Kind, Val};
use crate::store::AuditStore;

/// A stored signal of a model, as a rating names it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRef {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    pub open_time: i64,
    pub action: String,
    /// JSON (a learned model's carry its `version`).
    pub scores: String,
}

/// A rating to store.
#[derive(Debug, Clone)]
pub struct NewModelFeedback<'a> {
    /// The registry name (without `ml:`).
    pub name: &'a str,
    /// The version that emitted the signal (0: not known).
    pub version: i64,
    pub signal: &'a SignalRef,
    /// `good` or `bad`.
    pub rating: &'a str,
    pub comment: Option<&'a str>,
    pub created_by: &'a str,
    pub created_at: i64,
}

/// The ratings of a model since some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackCounts {
    pub good: i64,
    pub bad: i64,
    /// Distinct signals rated.
    pub signals: i64,
    pub last_at: Option<i64>,
}

const SIGNAL_COLUMNS: &str = "id, symbol, \"interval\", open_time, action, scores";
const SIGNAL_KINDS: [Kind; 6] = [Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Text, Kind::Text];

fn signal_of(cells: Vec<crate::rows::Cell>) -> Result<SignalRef, AuditError> {
    let mut c = Cells::new("signals", cells);
    Ok(SignalRef {
        id: c.text()?,
        symbol: c.text()?,
        interval: c.text()?,
        open_time: c.int()?,
        action: c.text()?,
        scores: c.text()?,
    })
}

impl AuditStore {
    /// The signal `id` if `model` (e.g. `ml:trend`) emitted it.
    pub async fn model_signal(&self, model: &str, id: &str) -> Result<Option<SignalRef>, AuditError> {
        let sql = format!("SELECT {SIGNAL_COLUMNS} FROM signals WHERE id = $1 AND model = $2");
        let rows = self.select("signals", &sql, &[Val::Text(id), Val::Text(model)], &SIGNAL_KINDS).await?;
        rows.into_iter().next().map(signal_of).transpose()
    }

    /// The signals `model` emitted for the candle of `symbol` and `interval` opening at
    /// `open_time` (one per source feeding that series), by id.
    pub async fn model_signals_at(
        &self,
        model: &str,
        symbol: &str,
        interval: &str,
        open_time: i64,
    ) -> Result<Vec<SignalRef>, AuditError> {
        let sql = format!(
            "SELECT {SIGNAL_COLUMNS} FROM signals WHERE model = $1 AND symbol = $2 AND \"interval\" = $3 \
             AND open_time = $4 ORDER BY id"
        );
        let binds = [Val::Text(model), Val::Text(symbol), Val::Text(interval), Val::Int(open_time)];
        let rows = self.select("signals", &sql, &binds, &SIGNAL_KINDS).await?;
        rows.into_iter().map(signal_of).collect()
    }

    /// Stores a rating, replacing the same user's earlier rating of the same signal; `true`
    /// when it replaced one.
    pub async fn upsert_model_feedback(&self, f: &NewModelFeedback<'_>) -> Result<bool, AuditError> {
        let id = format!("{}/{}/{}", f.name, f.signal.id, f.created_by);
        let existed = !self
            .select("model_feedback", "SELECT id FROM model_feedback WHERE id = $1", &[Val::Text(&id)], &[Kind::Text])
            .await?
            .is_empty();
        let sql = "INSERT INTO model_feedback (id, name, version, signal_id, symbol, \"interval\", open_time, action, \
                   rating, comment, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                   ON CONFLICT (id) DO UPDATE SET version = excluded.version, rating = excluded.rating, \
                   comment = excluded.comment, created_at = excluded.created_at";
        let binds = [
            Val::Text(&id),
            Val::Text(f.name),
            Val::Int(f.version),
            Val::Text(&f.signal.id),
            Val::Text(&f.signal.symbol),
            Val::Text(&f.signal.interval),
            Val::Int(f.signal.open_time),
            Val::Text(&f.signal.action),
            Val::Text(f.rating),
            Val::OptText(f.comment),
            Val::Text(f.created_by),
            Val::Int(f.created_at),
        ];
        self.select("model_feedback", sql, &binds, &[]).await?;
        Ok(existed)
    }

    /// The ratings of `name` given at or after `since`.
    pub async fn model_feedback_counts(&self, name: &str, since: i64) -> Result<FeedbackCounts, AuditError> {
        let sql = "SELECT COUNT(CASE WHEN rating = 'good' THEN 1 END), COUNT(CASE WHEN rating = 'bad' THEN 1 END), \
                   COUNT(DISTINCT signal_id), MAX(created_at) FROM model_feedback WHERE name = $1 AND created_at >= $2";
        let kinds = [Kind::Int, Kind::Int, Kind::Int, Kind::OptInt];
        let rows = self.select("model_feedback", sql, &[Val::Text(name), Val::Int(since)], &kinds).await?;
        let Some(cells) = rows.into_iter().next() else { return Ok(FeedbackCounts::default()) };
        let mut c = Cells::new("model_feedback", cells);
        Ok(FeedbackCounts { good: c.int()?, bad: c.int()?, signals: c.int()?, last_at: c.opt_int()? })
    }
}
