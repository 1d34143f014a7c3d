-- Approvals: tool calls waiting for a person, derived from the run journal
-- (approval.requested / approval.resolved).
CREATE TABLE IF NOT EXISTS approvals (
    id            TEXT PRIMARY KEY,
    org           TEXT NOT NULL,
    usr           TEXT NOT NULL,
    project       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    tool          TEXT NOT NULL,
    approval_key  TEXT NOT NULL,
    risk          TEXT NOT NULL,
    status        TEXT NOT NULL,
    request       TEXT NOT NULL,
    decision      TEXT,
    reason        TEXT,
    arguments     TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    resolved_at   TEXT
);
CREATE INDEX IF NOT EXISTS approvals_run ON approvals (run_id, status);
CREATE INDEX IF NOT EXISTS approvals_scope ON approvals (org, usr, project, id);
CREATE INDEX IF NOT EXISTS approvals_session_key ON approvals (session_id, approval_key);
CREATE INDEX IF NOT EXISTS approvals_due ON approvals (status, expires_at);
