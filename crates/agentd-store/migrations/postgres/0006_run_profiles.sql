-- Which model profiles a run tried (JSON list) and which one answered last.
ALTER TABLE runs ADD COLUMN attempted_profiles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN final_profile TEXT;
