-- Who changed what: one row per successful change made through the API.
CREATE TABLE IF NOT EXISTS audit_log (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    key_id      TEXT,
    role        TEXT,
    usr         TEXT NOT NULL,
    method      TEXT NOT NULL,
    route       TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      BIGINT NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_org ON audit_log (org, id);
