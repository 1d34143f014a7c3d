-- The agent whose settings a run uses.
ALTER TABLE runs ADD COLUMN agent TEXT NOT NULL DEFAULT 'default';
