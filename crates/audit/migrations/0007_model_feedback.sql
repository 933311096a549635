-- Users' ratings of learned models' signals (`POST /api/v1/models/{name}/feedback`). Apart from
-- `ai_feedback` (0002: free 1–5 ratings of any model, one row per call) because a rating here
-- judges one stored `ml:NAME` signal good or bad, the way its outcome judges it hit or miss:
-- one rating per (model, signal, user), a new one replacing the old, so that a summary counts
-- signals, not clicks. Same conventions as 0001_init.sql: portable types only, epoch-ms times.
-- Written by the edge.
CREATE TABLE model_feedback (
    -- `<name>/<signal_id>/<created_by>`: the row a user's next rating of the signal replaces.
    id TEXT PRIMARY KEY,
    -- The registry name (without the `ml:` prefix).
    name TEXT NOT NULL,
    -- The version that emitted the signal (its `version` score; 0: not known).
    version BIGINT NOT NULL,
    signal_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    "interval" TEXT NOT NULL,
    open_time BIGINT NOT NULL,
    -- The signal's action (`long`, `short` or `hold`).
    action TEXT NOT NULL,
    -- `good` or `bad`.
    rating TEXT NOT NULL,
    comment TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX model_feedback_name_created_at ON model_feedback (name, created_at);
