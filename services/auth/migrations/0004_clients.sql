-- Member-system clients: an organisation's own software connecting to its node. Each has an
-- API token (auth.tokens, for the token in its requests) and a NATS nkey user on the node's
-- nats-server, of which only the public key is kept. A revoked client stays listed; its
-- token is revoked with it. Every change notifies the node, which rewrites its nats-server's
-- users file and its feed consumers (services/auth/clients.py).
CREATE TABLE clients (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,30}$'),
    token_id    uuid NOT NULL UNIQUE REFERENCES tokens (id),
    nkey        text NOT NULL UNIQUE CHECK (nkey ~ '^U[A-Z2-7]{55}$'),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE FUNCTION clients_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relais_auth_clients', '');
    RETURN NULL;
END $$;

CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION clients_changed();
