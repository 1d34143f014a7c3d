-- Tool calls made without a model (POST /v1/tools/{name}/call), journaled.
CREATE TABLE IF NOT EXISTS tool_calls (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    session_id  TEXT,
    record      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tool_calls_scope ON tool_calls (org, usr, project, id);
