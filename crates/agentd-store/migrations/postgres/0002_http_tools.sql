-- Tools registered at run time that POST their arguments to a URL; per tenant.
CREATE TABLE IF NOT EXISTS http_tools (
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    def         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org, usr, project, name)
);
