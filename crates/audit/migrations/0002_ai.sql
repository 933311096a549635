-- The edge's AI storage: on-demand analyses (`POST /api/v1/ai/analyze`, scheduler triggers) and
-- the feedback users give on models. Same conventions as 0001_init.sql: portable types only,
-- epoch-ms times, JSON columns hold JSON text. Written by the edge, not by the audit worker.

CREATE TABLE ai_analyses (
    id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    "interval" TEXT NOT NULL,
    -- Open time of the last bar analysed.
    open_time BIGINT NOT NULL,
    -- `store` (the symbol's candles in this store) or `request` (candles given in the request).
    source TEXT NOT NULL,
    -- The models that answered, comma-separated.
    models TEXT NOT NULL,
    actor TEXT NOT NULL,
    -- The whole answer as the API gave it (JSON).
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ai_analyses_created_at ON ai_analyses (created_at);

CREATE TABLE ai_feedback (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    -- 1 (useless) to 5 (excellent).
    rating BIGINT NOT NULL,
    analysis_id TEXT,
    signal_id TEXT,
    symbol TEXT,
    comment TEXT,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ai_feedback_model ON ai_feedback (model);
