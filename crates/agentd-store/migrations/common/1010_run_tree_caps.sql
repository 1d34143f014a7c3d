-- The operator's caps on trees count a root's runs and an org's unfinished runs.
CREATE INDEX IF NOT EXISTS runs_root ON runs (root_run_id);
CREATE INDEX IF NOT EXISTS runs_org_status ON runs (org, status);
