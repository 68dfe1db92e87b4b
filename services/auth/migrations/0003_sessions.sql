-- Page sessions, one row per login: the signed cookie carries a random id, only its SHA-256
-- digest is kept here (a leaked table opens no session). A session ends when its user logs
-- out, an administrator ends it, or the account is disabled or its password or role changes;
-- ended rows are kept a day for the administrators' view, then forgotten. No address and no
-- browser are stored: who logged in when is in the audit log already.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    username     text NOT NULL REFERENCES users (username),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    ended_why    text CHECK (ended_why IN ('logout', 'admin', 'disabled', 'password', 'role')),
    CHECK ((ended_at IS NULL) = (ended_why IS NULL))
);
CREATE INDEX sessions_open_of_user ON sessions (username) WHERE ended_at IS NULL;
