-- tradeflow audit store, one schema for SQLite (3.24+) and PostgreSQL.
-- Portable types only: BIGINT, DOUBLE PRECISION, TEXT. Times are epoch milliseconds (BIGINT).
-- `id` is the id of the bus message the row records; writes are `ON CONFLICT (id) DO NOTHING`.
-- `recorded_at` is when the store wrote the row. JSON columns hold JSON text.
-- Column names that are keywords somewhere ("interval", "trigger", "time") are quoted.

CREATE TABLE candles (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    "interval" TEXT NOT NULL,
    open_time BIGINT NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX candles_symbol_open_time ON candles (symbol, open_time);

CREATE TABLE signals (
    id TEXT PRIMARY KEY,
    candle_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    "interval" TEXT NOT NULL,
    open_time BIGINT NOT NULL,
    model TEXT NOT NULL,
    model_kind TEXT NOT NULL,
    action TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    reasoning TEXT NOT NULL,
    scores TEXT NOT NULL,
    features TEXT NOT NULL,
    market TEXT NOT NULL,
    stop_loss DOUBLE PRECISION,
    take_profit DOUBLE PRECISION,
    latency_us BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX signals_symbol_open_time ON signals (symbol, open_time);

CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    candle_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    "interval" TEXT NOT NULL,
    open_time BIGINT NOT NULL,
    profile TEXT NOT NULL,
    action TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    "trigger" TEXT NOT NULL,
    missing TEXT NOT NULL,
    contributions TEXT NOT NULL,
    reasoning TEXT NOT NULL,
    stop_loss DOUBLE PRECISION,
    take_profit DOUBLE PRECISION,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX decisions_symbol_open_time ON decisions (symbol, open_time);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    intent TEXT NOT NULL,
    quantity DOUBLE PRECISION NOT NULL,
    limit_price DOUBLE PRECISION,
    reference_price DOUBLE PRECISION NOT NULL,
    leverage DOUBLE PRECISION NOT NULL,
    stop_loss DOUBLE PRECISION,
    take_profit DOUBLE PRECISION,
    trailing_stop_pct DOUBLE PRECISION,
    seq BIGINT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX orders_account_time ON orders (account, "time");

CREATE TABLE rejections (
    id TEXT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    seq BIGINT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX rejections_account_time ON rejections (account, "time");

CREATE TABLE fills (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity DOUBLE PRECISION NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    fee DOUBLE PRECISION NOT NULL,
    realized_pnl DOUBLE PRECISION NOT NULL,
    liquidity TEXT NOT NULL,
    reason TEXT NOT NULL,
    seq BIGINT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX fills_account_time ON fills (account, "time");

-- Position snapshots: one row per change of a position.
CREATE TABLE positions (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity DOUBLE PRECISION NOT NULL,
    entry_price DOUBLE PRECISION NOT NULL,
    mark_price DOUBLE PRECISION NOT NULL,
    unrealized_pnl DOUBLE PRECISION NOT NULL,
    liquidation_price DOUBLE PRECISION,
    stop_loss DOUBLE PRECISION,
    take_profit DOUBLE PRECISION,
    status TEXT NOT NULL,
    seq BIGINT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX positions_account_time ON positions (account, "time");

CREATE TABLE balance_history (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    balance DOUBLE PRECISION NOT NULL,
    equity DOUBLE PRECISION NOT NULL,
    margin_used DOUBLE PRECISION NOT NULL,
    unrealized_pnl DOUBLE PRECISION NOT NULL,
    realized_pnl DOUBLE PRECISION NOT NULL,
    fees DOUBLE PRECISION NOT NULL,
    open_positions BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX balance_history_account_time ON balance_history (account, "time");

-- Action log: open_long, open_short, close_position, trade_rejected, auto_pause,
-- trailing_stop_update, ...
CREATE TABLE trading_logs (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT,
    action TEXT NOT NULL,
    details TEXT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX trading_logs_account_time ON trading_logs (account, "time");

CREATE TABLE system_events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX system_events_kind_time ON system_events (kind, "time");

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    ip TEXT,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX audit_log_actor_time ON audit_log (actor, "time");
CREATE INDEX audit_log_action_time ON audit_log (action, "time");
