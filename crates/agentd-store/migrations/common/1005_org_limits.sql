-- Quotas an operator set for one organisation over the API (they replace the config's).
CREATE TABLE IF NOT EXISTS org_limits (
    org         TEXT PRIMARY KEY,
    limits      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
