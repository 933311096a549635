//! Read queries for the edge's trading, analytics and audit routes: the latest balance and
//! position of every account, trades (fills with their order), the trading log, balance and
//! position history, equity series and fill statistics for the analytics, the outcome of one
//! order, and the audit log with its filters.
//!
//! "Latest" is by (`time`, `seq`): the bar time of the risk message that caused the row, then
//! its number within the account.

use super::Cells;
use crate::error::AuditError;
use crate::rows::{AuditLogRow, BalanceRow, Cell, FillRow, Kind, OrderRow, PositionRow, RejectionRow, Row, Table};
use crate::rows::{TradingLogRow, Val};
use crate::store::AuditStore;

/// A fill and what the order that caused it asked for (`None` for fills of a mark: stops,
/// take-profits, liquidations on a bar).
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub fill: FillRow,
    pub order: Option<TradeOrder>,
}

/// The order half of a [`Trade`].
#[derive(Debug, Clone, PartialEq)]
pub struct TradeOrder {
    pub decision_id: String,
    /// open, close, reduce.
    pub intent: String,
    pub order_type: String,
    pub quantity: f64,
    pub reference_price: f64,
    pub leverage: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

/// One point of an account's equity series.
#[derive(Debug, Clone, PartialEq)]
pub struct EquityPoint {
    pub account: String,
    pub time: i64,
    pub seq: i64,
    pub equity: f64,
}

/// Fill statistics of one account. A closing fill is one whose reason is not `entry` (exit,
/// stop_loss, take_profit, trailing_stop, liquidation, emergency_close); its PnL is the
/// realised PnL before fees.
#[derive(Debug, Clone, PartialEq)]
pub struct FillStats {
    pub account: String,
    pub fills: i64,
    pub closing: i64,
    /// Closing fills with realised PnL > 0.
    pub wins: i64,
    /// Closing fills with realised PnL < 0.
    pub losses: i64,
    /// Σ realised PnL of the closing fills.
    pub realized_pnl: f64,
    /// Σ of the positive and of the negative realised PnLs.
    pub gross_profit: f64,
    pub gross_loss: f64,
    pub best: Option<f64>,
    pub worst: Option<f64>,
    /// Σ fees of every fill.
    pub fees: f64,
}

/// What became of one order id: the order (approved), the rejection (refused), its fills.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderOutcome {
    pub order: Option<OrderRow>,
    pub rejection: Option<RejectionRow>,
    pub fills: Vec<FillRow>,
}

/// Filters of the audit log; `None` matches everything. Times are epoch ms, inclusive.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// `a."c1", a."c2", ...`: the columns of `table` in order, qualified by `alias`.
fn columns(table: Table, alias: &str) -> String {
    table.columns().iter().map(|c| format!("{alias}.\"{c}\"")).collect::<Vec<_>>().join(", ")
}

fn rows_of<T>(table: Table, rows: Vec<Vec<Cell>>, pick: impl Fn(Row) -> Option<T>) -> Result<Vec<T>, AuditError> {
    rows.into_iter()
        .map(|cells| {
            let id = match cells.first() {
                Some(Cell::Text(id)) => id.clone(),
                _ => String::new(),
            };
            Row::from_cells(table, cells).and_then(&pick).ok_or(AuditError::Shape { table: table.name(), id })
        })
        .collect()
}

fn balances(rows: Vec<Vec<Cell>>) -> Result<Vec<BalanceRow>, AuditError> {
    rows_of(Table::Balance, rows, |r| if let Row::Balance(b) = r { Some(b) } else { None })
}

fn positions(rows: Vec<Vec<Cell>>) -> Result<Vec<PositionRow>, AuditError> {
    rows_of(Table::Position, rows, |r| if let Row::Position(p) = r { Some(p) } else { None })
}

fn fills(rows: Vec<Vec<Cell>>) -> Result<Vec<FillRow>, AuditError> {
    rows_of(Table::Fill, rows, |r| if let Row::Fill(f) = r { Some(f) } else { None })
}

fn single(rows: Vec<Vec<Cell>>, what: &'static str) -> Result<i64, AuditError> {
    match rows.into_iter().next() {
        Some(r) => Cells::new(what, r).int(),
        None => Ok(0),
    }
}

/// `(CAST($n AS TEXT) IS NULL OR column = $n)`: an optional equality filter.
fn optional(column: &str, n: usize) -> String {
    format!("(CAST(${n} AS TEXT) IS NULL OR {column} = ${n})")
}

impl AuditStore {
    /// The latest balance row of every account, by account.
    pub async fn latest_balances(&self) -> Result<Vec<BalanceRow>, AuditError> {
        let sql = format!(
            "SELECT {} FROM balance_history b WHERE NOT EXISTS (SELECT 1 FROM balance_history n \
             WHERE n.account = b.account AND (n.\"time\" > b.\"time\" OR (n.\"time\" = b.\"time\" AND n.seq > b.seq))) \
             ORDER BY b.account, b.id",
            columns(Table::Balance, "b")
        );
        let rows = self.select("balance_history", &sql, &[], Table::Balance.kinds()).await?;
        let mut out = balances(rows)?;
        out.dedup_by(|a, b| a.account == b.account);
        Ok(out)
    }

    /// The latest snapshot of every (account, symbol) position, open or closed.
    pub async fn latest_positions(&self) -> Result<Vec<PositionRow>, AuditError> {
        let sql = format!(
            "SELECT {} FROM positions p WHERE NOT EXISTS (SELECT 1 FROM positions n \
             WHERE n.account = p.account AND n.symbol = p.symbol \
             AND (n.\"time\" > p.\"time\" OR (n.\"time\" = p.\"time\" AND n.seq > p.seq))) \
             ORDER BY p.account, p.symbol, p.id",
            columns(Table::Position, "p")
        );
        let rows = self.select("positions", &sql, &[], Table::Position.kinds()).await?;
        let mut out = positions(rows)?;
        out.dedup_by(|a, b| a.account == b.account && a.symbol == b.symbol);
        Ok(out)
    }

    /// Trades (fills with their order), newest first; of one account or all.
    pub async fn trades(&self, account: Option<&str>, limit: i64, offset: i64) -> Result<Vec<Trade>, AuditError> {
        let sql = format!(
            "SELECT {}, o.decision_id, o.intent, o.order_type, o.quantity, o.reference_price, o.leverage, \
             o.stop_loss, o.take_profit FROM fills f LEFT JOIN orders o ON o.id = f.order_id \
             WHERE {} ORDER BY f.\"time\" DESC, f.seq DESC, f.id DESC LIMIT $2 OFFSET $3",
            columns(Table::Fill, "f"),
            optional("f.account", 1)
        );
        let mut kinds = Table::Fill.kinds().to_vec();
        kinds.extend([
            Kind::OptText,
            Kind::OptText,
            Kind::OptText,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
        ]);
        let binds = [Val::OptText(account), Val::Int(limit.max(0)), Val::Int(offset.max(0))];
        let rows = self.select("fills", &sql, &binds, &kinds).await?;
        let n = Table::Fill.columns().len();
        rows.into_iter()
            .map(|mut cells| {
                let rest = cells.split_off(n.min(cells.len()));
                let fill = fills(vec![cells])?.pop().ok_or(AuditError::Shape { table: "fills", id: String::new() })?;
                let mut c = Cells::new("orders", rest);
                let decision_id = c.opt_text()?;
                let intent = c.opt_text()?;
                let order_type = c.opt_text()?;
                let quantity = c.opt_float()?;
                let reference_price = c.opt_float()?;
                let leverage = c.opt_float()?;
                let stop_loss = c.opt_float()?;
                let take_profit = c.opt_float()?;
                let order = match (decision_id, intent, order_type) {
                    (Some(decision_id), Some(intent), Some(order_type)) => Some(TradeOrder {
                        decision_id,
                        intent,
                        order_type,
                        quantity: quantity.unwrap_or(0.0),
                        reference_price: reference_price.unwrap_or(0.0),
                        leverage: leverage.unwrap_or(1.0),
                        stop_loss,
                        take_profit,
                    }),
                    _ => None,
                };
                Ok(Trade { fill, order })
            })
            .collect()
    }

    /// Fills of one account or all.
    pub async fn count_fills(&self, account: Option<&str>) -> Result<i64, AuditError> {
        let sql = format!("SELECT COUNT(*) FROM fills WHERE {}", optional("account", 1));
        single(self.select("fills", &sql, &[Val::OptText(account)], &[Kind::Int]).await?, "fills")
    }

    /// The trading log, newest first; of one account or all.
    pub async fn trading_log(
        &self,
        account: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TradingLogRow>, AuditError> {
        let sql = format!(
            "SELECT {} FROM trading_logs t WHERE {} ORDER BY t.\"time\" DESC, t.id DESC LIMIT $2 OFFSET $3",
            columns(Table::TradingLog, "t"),
            optional("t.account", 1)
        );
        let binds = [Val::OptText(account), Val::Int(limit.max(0)), Val::Int(offset.max(0))];
        let rows = self.select("trading_logs", &sql, &binds, Table::TradingLog.kinds()).await?;
        rows_of(Table::TradingLog, rows, |r| if let Row::TradingLog(t) = r { Some(t) } else { None })
    }

    /// Balance rows, newest first; of one account or all.
    pub async fn balance_rows(
        &self,
        account: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<BalanceRow>, AuditError> {
        let sql = format!(
            "SELECT {} FROM balance_history b WHERE {} ORDER BY b.\"time\" DESC, b.seq DESC, b.id DESC \
             LIMIT $2 OFFSET $3",
            columns(Table::Balance, "b"),
            optional("b.account", 1)
        );
        let binds = [Val::OptText(account), Val::Int(limit.max(0)), Val::Int(offset.max(0))];
        balances(self.select("balance_history", &sql, &binds, Table::Balance.kinds()).await?)
    }

    /// Position snapshots, newest first; of one account and/or one symbol, or all.
    pub async fn position_rows(
        &self,
        account: Option<&str>,
        symbol: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<PositionRow>, AuditError> {
        let sql = format!(
            "SELECT {} FROM positions p WHERE {} AND {} ORDER BY p.\"time\" DESC, p.seq DESC, p.id DESC \
             LIMIT $3 OFFSET $4",
            columns(Table::Position, "p"),
            optional("p.account", 1),
            optional("p.symbol", 2)
        );
        let binds = [Val::OptText(account), Val::OptText(symbol), Val::Int(limit.max(0)), Val::Int(offset.max(0))];
        positions(self.select("positions", &sql, &binds, Table::Position.kinds()).await?)
    }

    /// The equity series of one account or all, oldest first (by account, time, seq).
    pub async fn equity_series(&self, account: Option<&str>) -> Result<Vec<EquityPoint>, AuditError> {
        let sql = format!(
            "SELECT account, \"time\", seq, equity FROM balance_history WHERE {} ORDER BY account, \"time\", seq, id",
            optional("account", 1)
        );
        let kinds = [Kind::Text, Kind::Int, Kind::Int, Kind::Float];
        let rows = self.select("balance_history", &sql, &[Val::OptText(account)], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("balance_history", r);
                Ok(EquityPoint { account: c.text()?, time: c.int()?, seq: c.int()?, equity: c.float()? })
            })
            .collect()
    }

    /// Fill statistics per account (accounts without fills are absent).
    pub async fn fill_stats(&self) -> Result<Vec<FillStats>, AuditError> {
        let sql = "SELECT account, COUNT(*), \
                   SUM(CASE WHEN reason <> 'entry' THEN 1 ELSE 0 END), \
                   SUM(CASE WHEN reason <> 'entry' AND realized_pnl > 0 THEN 1 ELSE 0 END), \
                   SUM(CASE WHEN reason <> 'entry' AND realized_pnl < 0 THEN 1 ELSE 0 END), \
                   SUM(CASE WHEN reason <> 'entry' THEN realized_pnl ELSE 0.0 END), \
                   SUM(CASE WHEN reason <> 'entry' AND realized_pnl > 0 THEN realized_pnl ELSE 0.0 END), \
                   SUM(CASE WHEN reason <> 'entry' AND realized_pnl < 0 THEN realized_pnl ELSE 0.0 END), \
                   MAX(CASE WHEN reason <> 'entry' THEN realized_pnl END), \
                   MIN(CASE WHEN reason <> 'entry' THEN realized_pnl END), \
                   SUM(fee) \
                   FROM fills GROUP BY account ORDER BY account";
        let kinds = [
            Kind::Text,
            Kind::Int,
            Kind::Int,
            Kind::Int,
            Kind::Int,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
            Kind::OptFloat,
        ];
        let rows = self.select("fills", sql, &[], &kinds).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("fills", r);
                Ok(FillStats {
                    account: c.text()?,
                    fills: c.int()?,
                    closing: c.int()?,
                    wins: c.int()?,
                    losses: c.int()?,
                    realized_pnl: c.opt_float()?.unwrap_or(0.0),
                    gross_profit: c.opt_float()?.unwrap_or(0.0),
                    gross_loss: c.opt_float()?.unwrap_or(0.0),
                    best: c.opt_float()?,
                    worst: c.opt_float()?,
                    fees: c.opt_float()?.unwrap_or(0.0),
                })
            })
            .collect()
    }

    /// The order, rejection and fills of order id `id` of `account` (fills caused by that
    /// risk message: `<id>#n`).
    pub async fn order_outcome(&self, account: &str, id: &str) -> Result<OrderOutcome, AuditError> {
        let sql = format!("SELECT {} FROM orders o WHERE o.id = $1", columns(Table::Order, "o"));
        let rows = self.select("orders", &sql, &[Val::Text(id)], Table::Order.kinds()).await?;
        let order = rows_of(Table::Order, rows, |r| if let Row::Order(o) = r { Some(o) } else { None })?.pop();
        let sql = format!("SELECT {} FROM rejections r WHERE r.id = $1", columns(Table::Rejection, "r"));
        let rows = self.select("rejections", &sql, &[Val::Text(id)], Table::Rejection.kinds()).await?;
        let rejection =
            rows_of(Table::Rejection, rows, |r| if let Row::Rejection(x) = r { Some(x) } else { None })?.pop();
        let since = order.as_ref().map(|o| o.time).unwrap_or(i64::MIN);
        let sql = format!(
            "SELECT {} FROM fills f WHERE f.account = $1 AND f.\"time\" >= $2 AND (f.order_id = $3 OR f.id >= $4 AND f.id < $5) \
             ORDER BY f.id",
            columns(Table::Fill, "f")
        );
        let (lo, hi) = (format!("{id}#"), format!("{id}$"));
        let binds = [Val::Text(account), Val::Int(since), Val::Text(id), Val::Text(&lo), Val::Text(&hi)];
        let fills = fills(self.select("fills", &sql, &binds, Table::Fill.kinds()).await?)?;
        Ok(OrderOutcome { order, rejection, fills })
    }

    /// The (symbol, action) of the stored decision with this id.
    pub async fn decision_subject(&self, id: &str) -> Result<Option<(String, String)>, AuditError> {
        let sql = "SELECT symbol, action FROM decisions WHERE id = $1";
        let rows = self.select("decisions", sql, &[Val::Text(id)], &[Kind::Text, Kind::Text]).await?;
        rows.into_iter()
            .next()
            .map(|r| {
                let mut c = Cells::new("decisions", r);
                Ok((c.text()?, c.text()?))
            })
            .transpose()
    }

    /// The open time of the latest stored decision of `profile` about `symbol`.
    pub async fn last_decision_time(&self, profile: &str, symbol: &str) -> Result<Option<i64>, AuditError> {
        let sql = "SELECT MAX(open_time) FROM decisions WHERE symbol = $1 AND profile = $2";
        let rows = self.select("decisions", sql, &[Val::Text(symbol), Val::Text(profile)], &[Kind::OptInt]).await?;
        match rows.into_iter().next() {
            Some(r) => Cells::new("decisions", r).opt_int(),
            None => Ok(None),
        }
    }

    /// A page of the audit log, newest first, and how many rows match in all.
    pub async fn audit_rows(
        &self,
        filter: AuditFilter<'_>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditLogRow>, i64), AuditError> {
        let condition = format!(
            "{} AND {} AND a.\"time\" >= $3 AND a.\"time\" <= $4",
            optional("a.actor", 1),
            optional("a.action", 2)
        );
        let binds = [
            Val::OptText(filter.actor),
            Val::OptText(filter.action),
            Val::Int(filter.start.unwrap_or(i64::MIN)),
            Val::Int(filter.end.unwrap_or(i64::MAX)),
            Val::Int(limit.max(0)),
            Val::Int(offset.max(0)),
        ];
        let sql = format!("SELECT COUNT(*) FROM audit_log a WHERE {condition}");
        let total = single(self.select("audit_log", &sql, &binds[..4], &[Kind::Int]).await?, "audit_log")?;
        let sql = format!(
            "SELECT {} FROM audit_log a WHERE {condition} ORDER BY a.\"time\" DESC, a.id DESC LIMIT $5 OFFSET $6",
            columns(Table::Audit, "a")
        );
        let rows = self.select("audit_log", &sql, &binds, Table::Audit.kinds()).await?;
        let rows = rows_of(Table::Audit, rows, |r| if let Row::Audit(a) = r { Some(a) } else { None })?;
        Ok((rows, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(account: &str, seq: i64, time: i64, equity: f64) -> Row {
        Row::Balance(BalanceRow {
            id: format!("{account}/{seq}/account"),
            account: account.into(),
            balance: equity,
            equity,
            margin_used: 0.0,
            unrealized_pnl: 0.0,
            realized_pnl: 0.0,
            fees: 0.0,
            open_positions: 0,
            seq,
            time,
        })
    }

    fn fill(account: &str, order: &str, n: u32, reason: &str, pnl: f64, time: i64) -> Row {
        Row::Fill(FillRow {
            id: format!("{order}#{n}"),
            order_id: order.into(),
            account: account.into(),
            symbol: "BTC".into(),
            side: "buy".into(),
            quantity: 1.0,
            price: 100.0,
            fee: 0.5,
            realized_pnl: pnl,
            liquidity: "taker".into(),
            reason: reason.into(),
            seq: n as i64,
            time,
        })
    }

    fn position(account: &str, symbol: &str, seq: i64, time: i64, status: &str) -> Row {
        Row::Position(PositionRow {
            id: format!("{account}/{seq}/position/{symbol}"),
            account: account.into(),
            symbol: symbol.into(),
            side: "long".into(),
            quantity: if status == "open" { 1.0 } else { 0.0 },
            entry_price: 100.0,
            mark_price: 100.0,
            unrealized_pnl: 0.0,
            liquidation_price: None,
            stop_loss: None,
            take_profit: None,
            status: status.into(),
            seq,
            time,
        })
    }

    fn audit(id: &str, actor: &str, action: &str, time: i64) -> Row {
        Row::Audit(AuditLogRow {
            id: id.into(),
            actor: actor.into(),
            action: action.into(),
            resource: "/x".into(),
            ip: Some("127.0.0.1".into()),
            status: "ok".into(),
            details: "{}".into(),
            time,
        })
    }

    #[tokio::test]
    async fn latest_rows_trades_stats_and_audit_filters() {
        let store = AuditStore::connect("sqlite::memory:").await.unwrap();
        let order = Row::Order(OrderRow {
            id: "d1/a".into(),
            decision_id: "d1".into(),
            account: "a".into(),
            symbol: "BTC".into(),
            side: "buy".into(),
            order_type: "market".into(),
            intent: "open".into(),
            quantity: 1.0,
            limit_price: None,
            reference_price: 100.0,
            leverage: 2.0,
            stop_loss: Some(90.0),
            take_profit: None,
            trailing_stop_pct: None,
            seq: 1,
            time: 10,
        });
        store
            .write(&[
                balance("a", 1, 10, 1000.0),
                balance("a", 2, 20, 1010.0),
                balance("a", 3, 20, 990.0),
                balance("b", 1, 5, 500.0),
                position("a", "BTC", 1, 10, "open"),
                position("a", "BTC", 2, 20, "closed"),
                position("a", "ETH", 3, 20, "open"),
                order,
                fill("a", "d1/a", 1, "entry", 0.0, 10),
                fill("a", "d2/a", 1, "exit", 12.0, 20),
                fill("a", "d3/a", 1, "stop_loss", -4.0, 30),
                fill("b", "d4/b", 1, "take_profit", 3.0, 40),
                audit("x1", "ops", "account_create", 100),
                audit("x2", "ops", "paper_order", 200),
                audit("x3", "admin", "paper_order", 300),
            ])
            .await
            .unwrap();

        let latest = store.latest_balances().await.unwrap();
        assert_eq!(latest.iter().map(|b| (b.account.as_str(), b.seq)).collect::<Vec<_>>(), [("a", 3), ("b", 1)]);
        let pos = store.latest_positions().await.unwrap();
        assert_eq!(
            pos.iter().map(|p| (p.symbol.as_str(), p.status.as_str())).collect::<Vec<_>>(),
            [("BTC", "closed"), ("ETH", "open")]
        );

        let trades = store.trades(Some("a"), 10, 0).await.unwrap();
        assert_eq!(trades.iter().map(|t| t.fill.id.as_str()).collect::<Vec<_>>(), ["d3/a#1", "d2/a#1", "d1/a#1"]);
        let first = trades.last().unwrap();
        assert_eq!(first.order.as_ref().map(|o| (o.intent.as_str(), o.leverage)), Some(("open", 2.0)));
        assert!(trades[0].order.is_none());
        assert_eq!(store.trades(None, 2, 1).await.unwrap().len(), 2);
        assert_eq!(store.count_fills(None).await.unwrap(), 4);
        assert_eq!(store.count_fills(Some("b")).await.unwrap(), 1);

        let stats = store.fill_stats().await.unwrap();
        let a = &stats[0];
        assert_eq!((a.fills, a.closing, a.wins, a.losses), (3, 2, 1, 1));
        assert_eq!(
            (a.realized_pnl, a.gross_profit, a.gross_loss, a.best, a.worst),
            (8.0, 12.0, -4.0, Some(12.0), Some(-4.0))
        );
        assert_eq!(a.fees, 1.5);

        let series = store.equity_series(Some("a")).await.unwrap();
        assert_eq!(series.iter().map(|p| p.equity).collect::<Vec<_>>(), [1000.0, 1010.0, 990.0]);
        assert_eq!(store.balance_rows(None, 10, 0).await.unwrap()[0].seq, 3);
        assert_eq!(store.position_rows(Some("a"), Some("BTC"), 10, 0).await.unwrap().len(), 2);
        assert_eq!(store.position_rows(None, Some("ETH"), 10, 0).await.unwrap().len(), 1);

        let outcome = store.order_outcome("a", "d1/a").await.unwrap();
        assert_eq!(outcome.order.map(|o| o.quantity), Some(1.0));
        assert_eq!(outcome.fills.len(), 1);
        assert!(outcome.rejection.is_none());
        assert_eq!(store.order_outcome("a", "nope").await.unwrap(), OrderOutcome::default());

        let (rows, total) = store.audit_rows(AuditFilter::default(), 2, 0).await.unwrap();
        assert_eq!((rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), total), (vec!["x3", "x2"], 3));
        let f = AuditFilter { actor: Some("ops"), action: Some("paper_order"), ..AuditFilter::default() };
        assert_eq!(store.audit_rows(f, 10, 0).await.unwrap().1, 1);
        let f = AuditFilter { start: Some(150), end: Some(300), ..AuditFilter::default() };
        let (rows, total) = store.audit_rows(f, 1, 1).await.unwrap();
        assert_eq!((rows[0].id.as_str(), total), ("x2", 2));
        assert_eq!(store.decision_subject("d1").await.unwrap(), None);
        assert_eq!(store.last_decision_time("p", "BTC").await.unwrap(), None);
    }
}
