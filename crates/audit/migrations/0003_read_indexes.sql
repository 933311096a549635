-- Indexes for the edge's reads: a series' candles in time order (start-up seed, candles,
-- tickers, indicators) and recent signals (AI history and performance windows).
CREATE INDEX candles_symbol_interval_open_time ON candles (symbol, "interval", open_time);
CREATE INDEX signals_recorded_at ON signals (recorded_at);
