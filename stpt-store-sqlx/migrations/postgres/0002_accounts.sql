-- Accounts: users, browser sessions, password-reset grants and runner tokens. Secrets are
-- never stored: sessions, resets and tokens are keyed by the SHA-256 (hex) of their secret.
CREATE TABLE stpt.users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL,
    -- lowercase username: unique without regard to case.
    username_key  TEXT COLLATE "C" NOT NULL UNIQUE,
    email         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE stpt.sessions (
    key_hash   TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES stpt.users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_user ON stpt.sessions (user_id);
CREATE INDEX sessions_by_expiry ON stpt.sessions (expires_at);

CREATE TABLE stpt.password_resets (
    key_hash   TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES stpt.users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_resets_by_user ON stpt.password_resets (user_id);

CREATE TABLE stpt.runner_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    -- JSON array of machine names as spelled at creation; empty: any machine.
    machines    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
