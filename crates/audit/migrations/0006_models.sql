-- The model registry: every trained version of every learned model (`tradeflow models train`),
-- its figures and its file. Same conventions as 0001_init.sql: portable types only, epoch-ms
-- times, JSON columns hold JSON text. Written by the CLI (and the edge), not by the audit
-- worker; read by the inference workers, which serve each model's deployed version.
CREATE TABLE model_versions (
    -- `<name>/<version>`.
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- 1, 2, 3 ... per name.
    version BIGINT NOT NULL,
    -- `logistic` or `gbt`.
    family TEXT NOT NULL,
    -- JSON: the learner's parameters, labels (horizon, threshold, kind), split, seed, source.
    parameters TEXT NOT NULL,
    -- The feature schema (`<name> v<version>`) and its hash; a model serves only under its hash.
    feature_schema TEXT NOT NULL,
    feature_hash TEXT NOT NULL,
    -- Open times of the first and last rows trained on, and of the test window.
    train_from BIGINT NOT NULL,
    train_to BIGINT NOT NULL,
    test_from BIGINT NOT NULL,
    test_to BIGINT NOT NULL,
    -- Test-window accuracy (null when not measured), for listings without parsing `metrics`.
    test_accuracy DOUBLE PRECISION,
    -- JSON: the training report (figures and baselines of validation and test, the trading
    -- evaluation) and the gate's verdict at training.
    metrics TEXT NOT NULL,
    -- `trained`, `deployed` (at most one per name) or `retired`.
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When and by whom it was last deployed; whether that deploy overrode the gate (0/1).
    deployed_at BIGINT,
    deployed_by TEXT,
    forced BIGINT NOT NULL DEFAULT 0,
    -- The model file (crates/models artifact: magic, checksum, payload) in lower-case hex: one
    -- TEXT column reads the same on SQLite and PostgreSQL.
    size_bytes BIGINT NOT NULL,
    bytes TEXT NOT NULL
);
CREATE UNIQUE INDEX model_versions_name_version ON model_versions (name, version);
CREATE INDEX model_versions_state ON model_versions (state);
