-- On the hub: each admitted organisation's NATS user key (the public half of its leaf's nkey)
-- and how long it holds. The hub's accounts file is generated from this and the roster.
CREATE TABLE leaf_credential (
    org_id     text PRIMARY KEY,
    nkey       text NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
