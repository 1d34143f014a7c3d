-- Every row carries tenant scope (org, usr, project); every query filters by it.
CREATE TABLE IF NOT EXISTS sessions (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL,
    usr           TEXT NOT NULL,
    project       TEXT NOT NULL,
    title         TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_scope ON sessions (org, usr, project, id);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at);

CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    model       TEXT NOT NULL,
    max_steps   BIGINT NOT NULL,
    output      TEXT,
    error       TEXT,
    usage       TEXT NOT NULL DEFAULT '{"input_tokens":0,"output_tokens":0,"total_tokens":0}',
    last_seq    BIGINT NOT NULL DEFAULT 0,
    lease_node  TEXT,
    lease_until BIGINT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_scope ON runs (org, usr, project, id);
CREATE INDEX IF NOT EXISTS runs_session_status ON runs (session_id, status, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, id);
CREATE INDEX IF NOT EXISTS runs_finished ON runs (status, updated_at);

-- The journal: append-only, one gap-free sequence per run.
CREATE TABLE IF NOT EXISTS events (
    run_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Session history, derived from the journal in the same transaction.
CREATE TABLE IF NOT EXISTS messages (
    session_id  TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
);
