-- Per-tenant secrets: the value is sealed (AEAD) by the runtime before it gets here.
CREATE TABLE IF NOT EXISTS secrets (
    org         TEXT NOT NULL,
    usr         TEXT NOT NULL,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org, usr, project, name)
);
