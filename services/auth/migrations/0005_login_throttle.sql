-- Login throttling's counts (issue 16), in the node's database rather than one process's memory:
-- every process of the node (and the next one, after a restart) sees the same failures and locks.
-- A key is an HMAC (the node's secret key) of "account:<name>" or "address:<client address>":
-- neither the typed names (unknown ones included) nor the addresses are kept in clear.
-- One row per attempt being checked or failed within the lock period: an attempt is counted
-- when its password check starts and forgotten again if it did not fail, so that attempts sent
-- together to two processes cannot pass the limit either.
CREATE TABLE login_attempts (
    id   bigserial PRIMARY KEY,
    key  bytea NOT NULL CHECK (length(key) = 32),
    at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_attempts_of ON login_attempts (key, at);
CREATE INDEX login_attempts_by_age ON login_attempts (at);

-- A key locked until a time: every attempt at it is refused, before any hashing, until then.
CREATE TABLE login_locks (
    key   bytea PRIMARY KEY CHECK (length(key) = 32),
    until timestamptz NOT NULL
);
