-- Runs that delegate to child runs: the tree, the children a run waits
-- for, children held back by a concurrency cap, and usage rolled up.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN root_run_id TEXT;
ALTER TABLE runs ADD COLUMN depth BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN agent_version BIGINT;
ALTER TABLE runs ADD COLUMN waiting_on TEXT;
ALTER TABLE runs ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN child_usage TEXT NOT NULL DEFAULT '{"input_tokens":0,"output_tokens":0,"total_tokens":0}';
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id, id);
-- Every version of a tenant document (agents), kept so a run uses the one it started with.
CREATE TABLE IF NOT EXISTS doc_versions (
    kind        TEXT NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (kind, org, usr, project, name, version)
);
-- A team's blackboard: what its members and lead wrote, in order.
CREATE TABLE IF NOT EXISTS blackboard (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    team        TEXT NOT NULL,
    author      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    content     TEXT NOT NULL,
    run_id      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blackboard_team ON blackboard (org, usr, project, team, created_at, id);
