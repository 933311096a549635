//! Queries of the edge's market and AI routes: candles of a series, the latest candle of every
//! series, the latest decision of a profile, what models' signals were worth afterwards, and
//! the AI storage (`ai_analyses`, `ai_feedback`, migration 0002), which the edge writes itself.
//!
//! Writes go through [`AuditStore::select`] too: a statement that returns no row is executed
//! the same way on both backends.

use tradeflow_core::market::Interval;

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Kind, Val};
use crate::store::AuditStore;

/// One stored bar of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct CandleBar {
    pub source: String,
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// The latest stored bar of one series (source, symbol, interval).
#[derive(Debug, Clone, PartialEq)]
pub struct LatestCandle {
    pub symbol: String,
    pub interval: String,
    pub bar: CandleBar,
}

/// The latest decision of one profile about one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionBrief {
    pub id: String,
    pub profile: String,
    pub interval: String,
    pub open_time: i64,
    pub action: String,
    pub confidence: f64,
    pub trigger: String,
    pub reasoning: String,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

/// Directional signals of one model and action whose next bar is stored, and what that bar did.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeStats {
    pub model: String,
    /// `long` or `short`.
    pub action: String,
    /// Signals with a next bar.
    pub signals: i64,
    /// Of them, those whose next bar moved their way (a flat bar is no hit).
    pub hits: i64,
    /// Sum of the next bar's return in the signal's direction (close to close, a fraction).
    pub return_sum: f64,
}

/// Signals of one model by action and status.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalCount {
    pub model: String,
    pub model_kind: String,
    pub action: String,
    /// `ok` or `error`.
    pub status: String,
    pub count: i64,
    pub mean_confidence: f64,
    pub mean_latency_us: f64,
}

/// One stored signal, without its JSON columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalBrief {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    pub open_time: i64,
    pub model: String,
    pub model_kind: String,
    pub action: String,
    pub confidence: f64,
    pub status: String,
    pub error: Option<String>,
    pub reasoning: String,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub recorded_at: i64,
}

/// A row of `ai_analyses`.
#[derive(Debug, Clone, PartialEq)]
pub struct AiAnalysisRow {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    pub open_time: i64,
    pub source: String,
    pub models: String,
    pub actor: String,
    /// JSON text.
    pub result: String,
    pub created_at: i64,
}

/// A row of `ai_feedback`.
#[derive(Debug, Clone, PartialEq)]
pub struct AiFeedbackRow {
    pub id: String,
    pub model: String,
    pub rating: i64,
    pub analysis_id: Option<String>,
    pub signal_id: Option<String>,
    pub symbol: Option<String>,
    pub comment: Option<String>,
    pub actor: String,
    pub created_at: i64,
}

/// Feedback on one model.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackStats {
    pub model: String,
    pub count: i64,
    pub mean_rating: f64,
    /// Ratings of 4 or 5.
    pub positive: i64,
}

/// What the AI storage holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AiStorageStats {
    pub analyses: i64,
    pub feedback: i64,
    pub oldest_analysis_at: Option<i64>,
    pub newest_analysis_at: Option<i64>,
    /// Total size of the stored answers (JSON text), bytes.
    pub analysis_bytes: i64,
}

const BAR_KINDS: [Kind; 7] = [Kind::Text, Kind::Int, Kind::Float, Kind::Float, Kind::Float, Kind::Float, Kind::Float];

fn bar(c: &mut Cells) -> Result<CandleBar, AuditError> {
    Ok(CandleBar {
        source: c.text()?,
        open_time: c.int()?,
        open: c.float()?,
        high: c.float()?,
        low: c.float()?,
        close: c.float()?,
        volume: c.float()?,
    })
}

/// Keeps the bars of the source of the latest one (a symbol fed by two sources is two series).
fn one_source(mut bars: Vec<CandleBar>) -> Vec<CandleBar> {
    if let Some(last) = bars.last().map(|b| b.source.clone())
        && bars.iter().any(|b| b.source != last)
    {
        bars.retain(|b| b.source == last);
    }
    bars
}

/// `CASE c."interval" WHEN '1m' THEN 60000 ... END`: the length of a bar, in SQL (constants only).
fn step_sql(column: &str) -> String {
    let arms: String = Interval::all().map(|i| format!(" WHEN '{}' THEN {}", i.as_str(), i.millis())).collect();
    format!("CASE {column}{arms} ELSE 0 END")
}

impl AuditStore {
    /// The latest `limit` bars of (symbol, interval) opening before `before` (all when `None`),
    /// oldest first, of the source of the latest one.
    pub async fn candle_bars(
        &self,
        symbol: &str,
        interval: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CandleBar>, AuditError> {
        let sql = "SELECT source, open_time, open, high, low, close, volume FROM candles \
                   WHERE symbol = $1 AND \"interval\" = $2 AND open_time < $3 \
                   ORDER BY open_time DESC LIMIT $4";
        let binds =
            [Val::Text(symbol), Val::Text(interval), Val::Int(before.unwrap_or(i64::MAX)), Val::Int(limit.max(0))];
        let rows = self.select("candles", sql, &binds, &BAR_KINDS).await?;
        let mut bars = rows.into_iter().map(|r| bar(&mut Cells::new("candles", r))).collect::<Result<Vec<_>, _>>()?;
        bars.reverse();
        Ok(one_source(bars))
    }

    /// The bars of (symbol, interval) opening at or after `from`, oldest first, of the source
    /// of the latest one.
    pub async fn candle_bars_since(
        &self,
        symbol: &str,
        interval: &str,
        from: i64,
    ) -> Result<Vec<CandleBar>, AuditError> {
        let sql = "SELECT source, open_time, open, high, low, close, volume FROM candles \
                   WHERE symbol = $1 AND \"interval\" = $2 AND open_time >= $3 ORDER BY open_time";
        let rows =
            self.select("candles", sql, &[Val::Text(symbol), Val::Text(interval), Val::Int(from)], &BAR_KINDS).await?;
        let bars = rows.into_iter().map(|r| bar(&mut Cells::new("candles", r))).collect::<Result<Vec<_>, _>>()?;
        Ok(one_source(bars))
    }

    /// The latest bar of every (symbol, interval) in the store (of every source whose latest bar
    /// is that one).
    pub async fn latest_candles(&self) -> Result<Vec<LatestCandle>, AuditError> {
        let sql = "SELECT c.symbol, c.\"interval\", c.source, c.open_time, c.open, c.high, c.low, c.close, c.volume \
                   FROM candles c JOIN (SELECT symbol, \"interval\", MAX(open_time) AS t FROM candles \
                   GROUP BY symbol, \"interval\") m \
                   ON c.symbol = m.symbol AND c.\"interval\" = m.\"interval\" AND c.open_time = m.t \
                   ORDER BY c.symbol, c.\"interval\", c.source";
        let kinds = [
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Int,
            Kind::Float,
            Kind::Float,
            Kind::Float,
            Kind::Float,
            Kind::Float,
        ];
        let rows = self.select("candles", sql, &[], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("candles", r);
                Ok(LatestCandle { symbol: c.text()?, interval: c.text()?, bar: bar(&mut c)? })
            })
            .collect()
    }

    /// The latest decision of `profile` about `symbol`, if any.
    pub async fn latest_decision(&self, symbol: &str, profile: &str) -> Result<Option<DecisionBrief>, AuditError> {
        let sql = "SELECT id, profile, \"interval\", open_time, action, confidence, \"trigger\", reasoning, \
                   stop_loss, take_profit FROM decisions WHERE symbol = $1 AND profile = $2 \
                   ORDER BY open_time DESC LIMIT 1";
        let kinds = [
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Int,
            Kind::Text,
            Kind::Float,
            Kind::Text,
            Kind::Text,
            Kind::OptFloat,
            Kind::OptFloat,
        ];
        let rows = self.select("decisions", sql, &[Val::Text(symbol), Val::Text(profile)], &kinds).await?;
        rows.into_iter()
            .next()
            .map(|r| {
                let mut c = Cells::new("decisions", r);
                Ok(DecisionBrief {
                    id: c.text()?,
                    profile: c.text()?,
                    interval: c.text()?,
                    open_time: c.int()?,
                    action: c.text()?,
                    confidence: c.float()?,
                    trigger: c.text()?,
                    reasoning: c.text()?,
                    stop_loss: c.opt_float()?,
                    take_profit: c.opt_float()?,
                })
            })
            .transpose()
    }

    /// Per model and direction, the `ok` long/short signals recorded at or after
    /// `since_recorded` whose candle's next bar (same source, symbol and interval, one
    /// interval later) is stored, and how that bar moved: the realised outcome of each call.
    pub async fn signal_outcomes(&self, since_recorded: i64) -> Result<Vec<OutcomeStats>, AuditError> {
        let sql = format!(
            "SELECT s.model, s.action, COUNT(*), \
             COUNT(CASE WHEN (s.action = 'long' AND n.close > c.close) OR (s.action = 'short' AND n.close < c.close) \
             THEN 1 END), \
             SUM(CASE WHEN s.action = 'long' THEN (n.close - c.close) / c.close ELSE (c.close - n.close) / c.close END) \
             FROM signals s JOIN candles c ON c.id = s.candle_id \
             JOIN candles n ON n.symbol = c.symbol AND n.source = c.source AND n.\"interval\" = c.\"interval\" \
             AND n.open_time = c.open_time + {} \
             WHERE s.status = 'ok' AND s.action IN ('long', 'short') AND s.recorded_at >= $1 \
             GROUP BY s.model, s.action ORDER BY s.model, s.action",
            step_sql("c.\"interval\"")
        );
        let kinds = [Kind::Text, Kind::Text, Kind::Int, Kind::Int, Kind::OptFloat];
        let rows = self.select("signals", &sql, &[Val::Int(since_recorded)], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("signals", r);
                Ok(OutcomeStats {
                    model: c.text()?,
                    action: c.text()?,
                    signals: c.int()?,
                    hits: c.int()?,
                    return_sum: c.opt_float()?.unwrap_or(0.0),
                })
            })
            .collect()
    }

    /// Signals recorded at or after `since_recorded`, counted by model, action and status.
    pub async fn signal_counts(&self, since_recorded: i64) -> Result<Vec<SignalCount>, AuditError> {
        let sql = "SELECT model, model_kind, action, status, COUNT(*), AVG(confidence), \
                   AVG(CAST(latency_us AS DOUBLE PRECISION)) FROM signals WHERE recorded_at >= $1 \
                   GROUP BY model, model_kind, action, status ORDER BY model, action, status";
        let kinds = [Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::OptFloat, Kind::OptFloat];
        let rows = self.select("signals", sql, &[Val::Int(since_recorded)], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("signals", r);
                Ok(SignalCount {
                    model: c.text()?,
                    model_kind: c.text()?,
                    action: c.text()?,
                    status: c.text()?,
                    count: c.int()?,
                    mean_confidence: c.opt_float()?.unwrap_or(0.0),
                    mean_latency_us: c.opt_float()?.unwrap_or(0.0),
                })
            })
            .collect()
    }

    /// The latest `limit` signals recorded at or after `since_recorded`, newest first.
    pub async fn recent_signals(&self, since_recorded: i64, limit: i64) -> Result<Vec<SignalBrief>, AuditError> {
        let sql = "SELECT id, symbol, \"interval\", open_time, model, model_kind, action, confidence, status, error, \
                   reasoning, stop_loss, take_profit, recorded_at FROM signals WHERE recorded_at >= $1 \
                   ORDER BY recorded_at DESC, open_time DESC, id DESC LIMIT $2";
        let kinds = [
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Int,
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Float,
            Kind::Text,
            Kind::OptText,
            Kind::Text,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::Int,
        ];
        let rows = self.select("signals", sql, &[Val::Int(since_recorded), Val::Int(limit.max(0))], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("signals", r);
                Ok(SignalBrief {
                    id: c.text()?,
                    symbol: c.text()?,
                    interval: c.text()?,
                    open_time: c.int()?,
                    model: c.text()?,
                    model_kind: c.text()?,
                    action: c.text()?,
                    confidence: c.float()?,
                    status: c.text()?,
                    error: c.opt_text()?,
                    reasoning: c.text()?,
                    stop_loss: c.opt_float()?,
                    take_profit: c.opt_float()?,
                    recorded_at: c.int()?,
                })
            })
            .collect()
    }

    /// Whether a signal with this id is stored.
    pub async fn signal_exists(&self, id: &str) -> Result<bool, AuditError> {
        let rows =
            self.select("signals", "SELECT id FROM signals WHERE id = $1", &[Val::Text(id)], &[Kind::Text]).await?;
        Ok(!rows.is_empty())
    }

    /// Stores an analysis (a repeated id is ignored).
    pub async fn insert_ai_analysis(&self, row: &AiAnalysisRow) -> Result<(), AuditError> {
        let sql = "INSERT INTO ai_analyses (id, symbol, \"interval\", open_time, source, models, actor, result, \
                   created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
        let binds = [
            Val::Text(&row.id),
            Val::Text(&row.symbol),
            Val::Text(&row.interval),
            Val::Int(row.open_time),
            Val::Text(&row.source),
            Val::Text(&row.models),
            Val::Text(&row.actor),
            Val::Text(&row.result),
            Val::Int(row.created_at),
        ];
        self.select("ai_analyses", sql, &binds, &[]).await.map(|_| ())
    }

    /// The latest `limit` analyses created at or after `since`, newest first.
    pub async fn ai_analyses(&self, since: i64, limit: i64) -> Result<Vec<AiAnalysisRow>, AuditError> {
        let sql = "SELECT id, symbol, \"interval\", open_time, source, models, actor, result, created_at \
                   FROM ai_analyses WHERE created_at >= $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        let kinds =
            [Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int];
        let rows = self.select("ai_analyses", sql, &[Val::Int(since), Val::Int(limit.max(0))], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("ai_analyses", r);
                Ok(AiAnalysisRow {
                    id: c.text()?,
                    symbol: c.text()?,
                    interval: c.text()?,
                    open_time: c.int()?,
                    source: c.text()?,
                    models: c.text()?,
                    actor: c.text()?,
                    result: c.text()?,
                    created_at: c.int()?,
                })
            })
            .collect()
    }

    /// Whether an analysis with this id is stored.
    pub async fn ai_analysis_exists(&self, id: &str) -> Result<bool, AuditError> {
        let rows = self
            .select("ai_analyses", "SELECT id FROM ai_analyses WHERE id = $1", &[Val::Text(id)], &[Kind::Text])
            .await?;
        Ok(!rows.is_empty())
    }

    /// Stores one feedback (a repeated id is ignored).
    pub async fn insert_ai_feedback(&self, row: &AiFeedbackRow) -> Result<(), AuditError> {
        let sql = "INSERT INTO ai_feedback (id, model, rating, analysis_id, signal_id, symbol, comment, actor, \
                   created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
        let binds = [
            Val::Text(&row.id),
            Val::Text(&row.model),
            Val::Int(row.rating),
            Val::OptText(row.analysis_id.as_deref()),
            Val::OptText(row.signal_id.as_deref()),
            Val::OptText(row.symbol.as_deref()),
            Val::OptText(row.comment.as_deref()),
            Val::Text(&row.actor),
            Val::Int(row.created_at),
        ];
        self.select("ai_feedback", sql, &binds, &[]).await.map(|_| ())
    }

    /// Feedback per model.
    pub async fn ai_feedback_stats(&self) -> Result<Vec<FeedbackStats>, AuditError> {
        let sql = "SELECT model, COUNT(*), AVG(CAST(rating AS DOUBLE PRECISION)), \
                   COUNT(CASE WHEN rating >= 4 THEN 1 END) FROM ai_feedback GROUP BY model ORDER BY model";
        let rows = self.select("ai_feedback", sql, &[], &[Kind::Text, Kind::Int, Kind::OptFloat, Kind::Int]).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("ai_feedback", r);
                Ok(FeedbackStats {
                    model: c.text()?,
                    count: c.int()?,
                    mean_rating: c.opt_float()?.unwrap_or(0.0),
                    positive: c.int()?,
                })
            })
            .collect()
    }

    /// Counts and extent of the AI storage.
    pub async fn ai_storage_stats(&self) -> Result<AiStorageStats, AuditError> {
        let sql = "SELECT COUNT(*), MIN(created_at), MAX(created_at), \
                   SUM(LENGTH(result)) FROM ai_analyses";
        let rows = self.select("ai_analyses", sql, &[], &[Kind::Int, Kind::OptInt, Kind::OptInt, Kind::OptInt]).await?;
        let mut stats = AiStorageStats::default();
        if let Some(r) = rows.into_iter().next() {
            let mut c = Cells::new("ai_analyses", r);
            stats.analyses = c.int()?;
            stats.oldest_analysis_at = c.opt_int()?;
            stats.newest_analysis_at = c.opt_int()?;
            stats.analysis_bytes = c.opt_int()?.unwrap_or(0);
        }
        let rows = self.select("ai_feedback", "SELECT COUNT(*) FROM ai_feedback", &[], &[Kind::Int]).await?;
        if let Some(r) = rows.into_iter().next() {
            stats.feedback = Cells::new("ai_feedback", r).int()?;
        }
        Ok(stats)
    }

    /// Deletes the analyses created before `before` (all when `None`) and, with `feedback`,
    /// the feedback created before it too. Returns (analyses, feedback) deleted.
    pub async fn clear_ai_storage(&self, before: Option<i64>, feedback: bool) -> Result<(i64, i64), AuditError> {
        let cut = [Val::Int(before.unwrap_or(i64::MAX))];
        let count = |table: &'static str| async move {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE created_at < $1");
            let rows = self.select(table, &sql, &cut, &[Kind::Int]).await?;
            match rows.into_iter().next() {
                Some(r) => Cells::new(table, r).int(),
                None => Ok(0),
            }
        };
        let analyses = count("ai_analyses").await?;
        self.select("ai_analyses", "DELETE FROM ai_analyses WHERE created_at < $1", &cut, &[]).await?;
        let mut deleted_feedback = 0;
        if feedback {
            deleted_feedback = count("ai_feedback").await?;
            self.select("ai_feedback", "DELETE FROM ai_feedback WHERE created_at < $1", &cut, &[]).await?;
        }
        Ok((analyses, deleted_feedback))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_series(url: &str) -> AuditStore {
        let store = AuditStore::connect(url).await.unwrap();
        let mut rows = Vec::new();
        for (i, close) in [100.0, 101.0, 99.0, 99.0, 102.0].into_iter().enumerate() {
            let t = 3_600_000 * i as i64;
            rows.push(crate::Row::Candle(crate::CandleRow {
                id: format!("csv:BTCUSD:1h:{t}"),
                source: "csv".into(),
                symbol: "BTCUSD".into(),
                interval: "1h".into(),
                open_time: t,
                open: close,
                high: close + 1.0,
                low: close - 1.0,
                close,
                volume: 10.0 + i as f64,
            }));
        }
        // Long at 100 (next 101: hit +1%), short at 101 (next 99: hit), long at 99 (next 99:
        // flat, no hit), short at 99 (next 102: miss), long at 102 (no next bar: not counted).
        for (i, action) in ["long", "short", "long", "short", "long"].into_iter().enumerate() {
            let t = 3_600_000 * i as i64;
            rows.push(crate::Row::Signal(crate::SignalRow {
                id: format!("csv:BTCUSD:1h:{t}/rsi"),
                candle_id: format!("csv:BTCUSD:1h:{t}"),
                symbol: "BTCUSD".into(),
                interval: "1h".into(),
                open_time: t,
                model: "rsi".into(),
                model_kind: "rule".into(),
                action: action.into(),
                confidence: 0.5,
                status: "ok".into(),
                error: None,
                reasoning: String::new(),
                scores: "{}".into(),
                features: "{}".into(),
                market: "{}".into(),
                stop_loss: None,
                take_profit: None,
                latency_us: 3,
            }));
        }
        for (t, action) in [(0, "long"), (3_600_000, "short")] {
            rows.push(crate::Row::Decision(crate::DecisionRow {
                id: format!("csv:BTCUSD:1h:{t}/technical"),
                candle_id: format!("csv:BTCUSD:1h:{t}"),
                symbol: "BTCUSD".into(),
                interval: "1h".into(),
                open_time: t,
                profile: "technical".into(),
                action: action.into(),
                confidence: 0.4,
                trigger: "complete".into(),
                missing: "[]".into(),
                contributions: "[]".into(),
                reasoning: "r".into(),
                stop_loss: Some(90.0),
                take_profit: None,
            }));
        }
        store.write(&rows).await.unwrap();
        store
    }

    #[tokio::test]
    async fn sqlite_bars_outcomes_and_ai_storage() {
        bars_outcomes_and_ai_storage("sqlite::memory:").await;
    }

    #[tokio::test]
    async fn postgres_bars_outcomes_and_ai_storage() {
        let pg = tradeflow_testkit::postgres::TestPostgres::start();
        bars_outcomes_and_ai_storage(&pg.url()).await;
    }

    async fn bars_outcomes_and_ai_storage(url: &str) {
        let store = store_with_series(url).await;
        let bars = store.candle_bars("BTCUSD", "1h", None, 3).await.unwrap();
        assert_eq!(bars.iter().map(|b| b.close).collect::<Vec<_>>(), [99.0, 99.0, 102.0]);
        let bars = store.candle_bars("BTCUSD", "1h", Some(3_600_000 * 2), 10).await.unwrap();
        assert_eq!(bars.iter().map(|b| b.open_time).collect::<Vec<_>>(), [0, 3_600_000]);
        assert!(store.candle_bars("BTCUSD", "4h", None, 10).await.unwrap().is_empty());
        assert_eq!(store.candle_bars_since("BTCUSD", "1h", 3 * 3_600_000).await.unwrap().len(), 2);
        let latest = store.latest_candles().await.unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!((latest[0].bar.open_time, latest[0].bar.close), (4 * 3_600_000, 102.0));

        let d = store.latest_decision("BTCUSD", "technical").await.unwrap().unwrap();
        assert_eq!(
            (d.open_time, d.action.as_str(), d.stop_loss, d.take_profit),
            (3_600_000, "short", Some(90.0), None)
        );
        assert!(store.latest_decision("BTCUSD", "committee").await.unwrap().is_none());

        let out = store.signal_outcomes(0).await.unwrap();
        let long = out.iter().find(|o| o.action == "long").unwrap();
        assert_eq!((long.signals, long.hits), (2, 1));
        assert!((long.return_sum - 0.01).abs() < 1e-12);
        let short = out.iter().find(|o| o.action == "short").unwrap();
        assert_eq!((short.signals, short.hits), (2, 1));
        assert!((short.return_sum - (2.0 / 101.0 - 3.0 / 99.0)).abs() < 1e-12);
        let counts = store.signal_counts(0).await.unwrap();
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 5);
        assert_eq!(store.recent_signals(0, 2).await.unwrap().len(), 2);
        assert!(store.signal_exists("csv:BTCUSD:1h:0/rsi").await.unwrap());
        assert!(!store.signal_exists("nope").await.unwrap());

        let a = AiAnalysisRow {
            id: "a1".into(),
            symbol: "BTCUSD".into(),
            interval: "1h".into(),
            open_time: 4 * 3_600_000,
            source: "store".into(),
            models: "rsi".into(),
            actor: "ops".into(),
            result: "{\"x\":1}".into(),
            created_at: 1000,
        };
        store.insert_ai_analysis(&a).await.unwrap();
        store.insert_ai_analysis(&a).await.unwrap();
        store.insert_ai_analysis(&AiAnalysisRow { id: "a2".into(), created_at: 2000, ..a.clone() }).await.unwrap();
        assert_eq!(store.ai_analyses(1500, 10).await.unwrap().len(), 1);
        assert_eq!(store.ai_analyses(0, 10).await.unwrap()[0].id, "a2");
        assert!(store.ai_analysis_exists("a1").await.unwrap());
        let f = AiFeedbackRow {
            id: "f1".into(),
            model: "rsi".into(),
            rating: 5,
            analysis_id: Some("a1".into()),
            signal_id: None,
            symbol: None,
            comment: Some("good".into()),
            actor: "ops".into(),
            created_at: 1000,
        };
        store.insert_ai_feedback(&f).await.unwrap();
        store.insert_ai_feedback(&AiFeedbackRow { id: "f2".into(), rating: 2, ..f.clone() }).await.unwrap();
        let fb = store.ai_feedback_stats().await.unwrap();
        assert_eq!((fb[0].count, fb[0].mean_rating, fb[0].positive), (2, 3.5, 1));
        let stats = store.ai_storage_stats().await.unwrap();
        assert_eq!((stats.analyses, stats.feedback, stats.oldest_analysis_at), (2, 2, Some(1000)));
        assert_eq!(stats.analysis_bytes, 14);
        assert_eq!(store.clear_ai_storage(Some(1500), false).await.unwrap(), (1, 0));
        assert_eq!(store.clear_ai_storage(None, true).await.unwrap(), (1, 2));
        assert_eq!(store.ai_storage_stats().await.unwrap().analyses, 0);
    }
}
