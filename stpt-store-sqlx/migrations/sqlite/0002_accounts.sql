-- Accounts: users, browser sessions, password-reset grants and runner tokens. Secrets are
-- never stored: sessions, resets and tokens are keyed by the SHA-256 (hex) of their secret.
CREATE TABLE stpt_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL,
    -- lowercase username: unique without regard to case.
    username_key  TEXT NOT NULL UNIQUE,
    email         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE stpt_sessions (
    key_hash   TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES stpt_users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX stpt_sessions_by_user ON stpt_sessions (user_id);
CREATE INDEX stpt_sessions_by_expiry ON stpt_sessions (expires_at);

CREATE TABLE stpt_password_resets (
    key_hash   TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES stpt_users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX stpt_password_resets_by_user ON stpt_password_resets (user_id);

CREATE TABLE stpt_runner_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    -- JSON array of machine names as spelled at creation; empty: any machine.
    machines    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
