-- Leases: the node executing a run holds it until lease_until (unix ms).
ALTER TABLE runs ADD COLUMN lease_node TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
CREATE INDEX IF NOT EXISTS runs_session_status ON runs (session_id, status, id);
CREATE INDEX IF NOT EXISTS runs_finished ON runs (status, updated_at);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at);
