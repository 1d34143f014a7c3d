-- Named JSON documents a tenant registers at run time (HTTP tools, skills).
CREATE TABLE IF NOT EXISTS tenant_docs (
    kind        TEXT NOT NULL,
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (kind, org, usr, project, name)
);
