-- Jobs (`tradeflow worker jobs`): one row per task, inserted `queued` by the audit writer from
-- its submission on jobs.requests (ON CONFLICT DO NOTHING, as every table), then moved on by
-- the jobs worker running it with conditional UPDATEs (a state only moves forward within an
-- attempt; `attempt` counts the runs of the task, a crashed one included). Same conventions
-- as 0001_init.sql.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    submitted_by TEXT NOT NULL,
    role TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    -- The kind's parameters (JSON).
    params TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT,
    -- 0 to 1, what it is doing, seconds left (NULL: no pace yet).
    progress DOUBLE PRECISION,
    step TEXT,
    eta_s DOUBLE PRECISION,
    error TEXT,
    -- The result summary (JSON) of a succeeded job.
    summary TEXT,
    -- The worker (fleet member) running it or that ran it last.
    worker TEXT,
    -- The submission (1, 2 after a retry, …) the worker last started.
    submission BIGINT
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_submitted_by ON jobs (submitted_by, submitted_at);

-- Results, keyed by task: a rerun replaces them (an attempt that crashed half-way left none).
CREATE TABLE job_results (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    -- The whole result (a backtest's report, a hyperopt's outcome, a download's summary): JSON.
    result TEXT NOT NULL,
    -- A backtest's HTML report (the first account's), NULL for other kinds.
    report_html TEXT,
    recorded_at BIGINT NOT NULL
);

-- State changes of jobs as jobs.events carried them (progress reports are not kept).
CREATE TABLE job_events (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    worker TEXT NOT NULL,
    "time" BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX job_events_task ON job_events (task_id);
