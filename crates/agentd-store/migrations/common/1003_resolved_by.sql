-- The API key that answered an approval.
ALTER TABLE approvals ADD COLUMN resolved_by TEXT;
