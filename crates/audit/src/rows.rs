//! The tables of the audit store and one plain row struct per table.
//!
//! Every struct has the columns of its table in order, except `recorded_at` (set by the store
//! when it writes). Column types: `i64` is BIGINT, `f64` is DOUBLE PRECISION, `String` is TEXT
//! (JSON columns hold JSON text, stored verbatim), `Option<..>` is a nullable column.

/// A value of one column, borrowed from a row, as it is bound to an INSERT.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
    OptFloat(Option<f64>),
    OptText(Option<&'a str>),
}

/// The SQL kind of a column, as it is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    OptInt,
    Float,
    Text,
    OptFloat,
    OptText,
}

/// A value of one column, read back.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Int(i64),
    OptInt(Option<i64>),
    Float(f64),
    Text(String),
    OptFloat(Option<f64>),
    OptText(Option<String>),
}

/// The Rust types a column can have.
pub(crate) trait Field: Sized {
    const KIND: Kind;
    fn val(&self) -> Val<'_>;
    fn from_cell(cell: Cell) -> Option<Self>;
}

impl Field for i64 {
    const KIND: Kind = Kind::Int;
    fn val(&self) -> Val<'_> {
        Val::Int(*self)
    }
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Int(v) => Some(v),
            _ => None,
        }
    }
}

impl Field for f64 {
    const KIND: Kind = Kind::Float;
    fn val(&self) -> Val<'_> {
        Val::Float(*self)
    }
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Float(v) => Some(v),
            _ => None,
        }
    }
}

impl Field for String {
    const KIND: Kind = Kind::Text;
    fn val(&self) -> Val<'_> {
        Val::Text(self)
    }
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::Text(v) => Some(v),
            _ => None,
        }
    }
}

impl Field for Option<f64> {
    const KIND: Kind = Kind::OptFloat;
    fn val(&self) -> Val<'_> {
        Val::OptFloat(*self)
    }
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::OptFloat(v) => Some(v),
            _ => None,
        }
    }
}

impl Field for Option<String> {
    const KIND: Kind = Kind::OptText;
    fn val(&self) -> Val<'_> {
        Val::OptText(self.as_deref())
    }
    fn from_cell(cell: Cell) -> Option<Self> {
        match cell {
            Cell::OptText(v) => Some(v),
            _ => None,
        }
    }
}

macro_rules! tables {
    ($(
        $(#[$tmeta:meta])*
        $variant:ident($row:ident) = $name:literal {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty, )*
        }
    )*) => {
        /// A table of the audit store.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Table {
            $( $(#[$tmeta])* $variant, )*
        }

        impl Table {
            /// Every table, in schema order.
            pub const ALL: &'static [Table] = &[$( Table::$variant, )*];

            /// The SQL name of the table.
            pub fn name(self) -> &'static str {
                match self {
                    $( Table::$variant => $name, )*
                }
            }

            /// Its columns in order, without `recorded_at` (the store adds it).
            pub fn columns(self) -> &'static [&'static str] {
                match self {
                    $( Table::$variant => $row::COLUMNS, )*
                }
            }

            pub(crate) fn kinds(self) -> &'static [Kind] {
                match self {
                    $( Table::$variant => $row::KINDS, )*
                }
            }

            pub(crate) fn index(self) -> usize {
                self as usize
            }
        }

        $(
            $(#[$tmeta])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $row {
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl $row {
                /// The columns of the table, without `recorded_at`.
                pub const COLUMNS: &'static [&'static str] = &[$( stringify!($field), )*];
                const KINDS: &'static [Kind] = &[$( <$ty as Field>::KIND, )*];

                fn visit<'a>(&'a self, f: &mut impl FnMut(&'static str, Val<'a>)) {
                    $( f(stringify!($field), Field::val(&self.$field)); )*
                }

                fn from_cells(cells: Vec<Cell>) -> Option<Self> {
                    let mut it = cells.into_iter();
                    Some(Self { $( $field: Field::from_cell(it.next()?)?, )* })
                }
            }

            impl From<$row> for Row {
                fn from(row: $row) -> Self {
                    Row::$variant(row)
                }
            }
        )*

        /// A row of any table.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Row {
            $( $variant($row), )*
        }

        impl Row {
            /// The message id, the primary key of its table.
            pub fn id(&self) -> &str {
                match self {
                    $( Row::$variant(r) => &r.id, )*
                }
            }

            pub fn table(&self) -> Table {
                match self {
                    $( Row::$variant(_) => Table::$variant, )*
                }
            }

            /// Calls `f` with each column name and value, in column order.
            pub(crate) fn visit<'a>(&'a self, f: &mut impl FnMut(&'static str, Val<'a>)) {
                match self {
                    $( Row::$variant(r) => r.visit(f), )*
                }
            }

            /// Builds a row of `table` from its cells in column order; `None` if they do not fit.
            pub(crate) fn from_cells(table: Table, cells: Vec<Cell>) -> Option<Row> {
                match table {
                    $( Table::$variant => $row::from_cells(cells).map(Row::$variant), )*
                }
            }
        }
    };
}

tables! {
    /// A closed candle.
    Candle(CandleRow) = "candles" {
        id: String,
        source: String,
        symbol: String,
        interval: String,
        /// Epoch ms.
        open_time: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    }

    /// One model's signal on one candle.
    Signal(SignalRow) = "signals" {
        id: String,
        candle_id: String,
        symbol: String,
        interval: String,
        open_time: i64,
        model: String,
        /// rule, ml, llm.
        model_kind: String,
        /// long, short, hold.
        action: String,
        confidence: f64,
        /// ok or error.
        status: String,
        /// Why the model failed, when `status` is error.
        error: Option<String>,
        reasoning: String,
        /// JSON object: strategy -> score.
        scores: String,
        /// JSON object: feature -> value.
        features: String,
        /// JSON: the market condition.
        market: String,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        latency_us: i64,
    }

    /// The ensemble's decision on one candle.
    Decision(DecisionRow) = "decisions" {
        id: String,
        candle_id: String,
        symbol: String,
        interval: String,
        open_time: i64,
        profile: String,
        action: String,
        confidence: f64,
        trigger: String,
        /// JSON array: models whose signal was missing.
        missing: String,
        /// JSON array: per-model contributions.
        contributions: String,
        reasoning: String,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
    }

    /// An order sent for a decision.
    Order(OrderRow) = "orders" {
        id: String,
        decision_id: String,
        account: String,
        symbol: String,
        side: String,
        order_type: String,
        intent: String,
        quantity: f64,
        limit_price: Option<f64>,
        reference_price: f64,
        leverage: f64,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        trailing_stop_pct: Option<f64>,
        seq: i64,
        /// Epoch ms.
        time: i64,
    }

    /// A decision the risk stage refused.
    Rejection(RejectionRow) = "rejections" {
        id: String,
        decision_id: String,
        account: String,
        symbol: String,
        action: String,
        reason: String,
        message: String,
        seq: i64,
        time: i64,
    }

    /// A fill of an order.
    Fill(FillRow) = "fills" {
        id: String,
        order_id: String,
        account: String,
        symbol: String,
        side: String,
        quantity: f64,
        price: f64,
        fee: f64,
        realized_pnl: f64,
        liquidity: String,
        reason: String,
        seq: i64,
        time: i64,
    }

    /// A snapshot of a position after it changed.
    Position(PositionRow) = "positions" {
        id: String,
        account: String,
        symbol: String,
        side: String,
        quantity: f64,
        entry_price: f64,
        mark_price: f64,
        unrealized_pnl: f64,
        liquidation_price: Option<f64>,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        status: String,
        seq: i64,
        time: i64,
    }

    /// A snapshot of an account's balance.
    Balance(BalanceRow) = "balance_history" {
        id: String,
        account: String,
        balance: f64,
        equity: f64,
        margin_used: f64,
        unrealized_pnl: f64,
        realized_pnl: f64,
        fees: f64,
        open_positions: i64,
        seq: i64,
        time: i64,
    }

    /// An entry of the trading action log (open_long, open_short, close_position,
    /// trade_rejected, auto_pause, trailing_stop_update, ...).
    TradingLog(TradingLogRow) = "trading_logs" {
        id: String,
        account: String,
        symbol: Option<String>,
        action: String,
        details: String,
        time: i64,
    }

    /// An event of the system (service start/stop, failures, ...).
    SystemEvent(SystemEventRow) = "system_events" {
        id: String,
        kind: String,
        service: String,
        severity: String,
        message: String,
        /// JSON.
        details: String,
        time: i64,
    }

    /// What a user or operator did.
    Audit(AuditLogRow) = "audit_log" {
        id: String,
        actor: String,
        action: String,
        resource: String,
        ip: Option<String>,
        status: String,
        details: String,
        time: i64,
    }

    /// A submitted job as it was queued (the jobs worker updates the other columns).
    Job(JobRow) = "jobs" {
        /// The task id.
        id: String,
        kind: String,
        state: String,
        attempt: i64,
        submitted_by: String,
        role: String,
        submitted_at: i64,
        params: String,
    }

    /// A job's state change.
    JobEventRecord(JobEventRow) = "job_events" {
        id: String,
        task_id: String,
        kind: String,
        attempt: i64,
        state: String,
        error: Option<String>,
        worker: String,
        time: i64,
    }

    /// A news story, stored once (unique id and unique `title_key`).
    News(NewsRow) = "news" {
        id: String,
        /// The feed, as configured.
        source: String,
        title: String,
        /// The normalised title (`tradeflow_core::news::normalised_title`).
        title_key: String,
        /// The canonical link; empty when the story had none.
        link: String,
        summary: String,
        /// Comma-separated symbols; empty: about the market as a whole.
        symbols: String,
        /// Epoch ms.
        published_at: i64,
        fetched_at: i64,
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
