-- Every row carries tenant scope (org, usr, project); every query filters by it.
CREATE TABLE IF NOT EXISTS sessions (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL,
    usr           TEXT NOT NULL,
    project       TEXT NOT NULL,
    title         TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_scope ON sessions (org, usr, project, id);

CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    model       TEXT NOT NULL,
    max_steps   INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    usage       TEXT NOT NULL DEFAULT '{"input_tokens":0,"output_tokens":0,"total_tokens":0}',
    last_seq    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_scope ON runs (org, usr, project, id);
CREATE INDEX IF NOT EXISTS runs_session ON runs (session_id, id);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);

-- The journal: append-only, one gap-free sequence per run.
CREATE TABLE IF NOT EXISTS events (
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Session history, derived from the journal in the same transaction.
CREATE TABLE IF NOT EXISTS messages (
    session_id  TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
