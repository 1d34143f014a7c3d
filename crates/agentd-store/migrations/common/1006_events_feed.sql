-- The tenant-wide feed (GET /v1/events) reads a tenant's events by time.
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (org, usr, project, created_at);
