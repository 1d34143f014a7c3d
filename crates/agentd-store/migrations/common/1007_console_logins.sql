-- Console logins: a session cookie exchanged for an API key. Only the
-- SHA-256 (hex) of the cookie's token is stored; the login acts as its key.
CREATE TABLE IF NOT EXISTS console_logins (
    hash        TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX IF NOT EXISTS console_logins_key ON console_logins (key_id);
