-- The node's audit log: one hash chain, append-only (DESIGN.md §6).
CREATE TABLE entry (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    at         timestamptz NOT NULL,
    service    text NOT NULL,
    actor_org  text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    object     text NOT NULL,
    digest     text NOT NULL,
    outcome    text NOT NULL,
    event_id   uuid NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX entry_event ON entry (event_id);
CREATE INDEX entry_hash ON entry (hash);
CREATE INDEX entry_at ON entry (at, seq);
CREATE INDEX entry_actor ON entry (actor, seq);
CREATE INDEX entry_org ON entry (actor_org, seq);
CREATE INDEX entry_action ON entry (action, seq);
CREATE INDEX entry_object ON entry (object, seq);

-- What this node signed: the head of its chain, every N records or every minute.
CREATE TABLE checkpoint (
    seq       bigint PRIMARY KEY,
    hash      text NOT NULL,
    at        timestamptz NOT NULL,
    key_id    text NOT NULL,
    signature text NOT NULL
);

-- Retention: records up to last_seq were archived and may be pruned; the chain then starts
-- from this anchor, which must match a signed checkpoint.
CREATE TABLE cut (
    last_seq    bigint PRIMARY KEY,
    last_hash   text NOT NULL,
    archived_to text NOT NULL,
    made_at     timestamptz NOT NULL DEFAULT now()
);

-- On the hub: every node's checkpoints, and the checkpoints it refused.
CREATE TABLE node_checkpoint (
    org         text NOT NULL,
    node_id     text NOT NULL,
    seq         bigint NOT NULL,
    hash        text NOT NULL,
    at          timestamptz NOT NULL,
    key_id      text NOT NULL,
    signature   text NOT NULL,
    event_id    uuid NOT NULL UNIQUE,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, seq)
);
CREATE TABLE alert (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    org      text NOT NULL,
    kind     text NOT NULL,
    detail   text NOT NULL,
    event_id uuid UNIQUE
);

-- On the hub: the network log, from the clear metadata crossing ROUTER (never case content).
CREATE TABLE network_event (
    seq      bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    at       timestamptz NOT NULL,
    action   text NOT NULL,
    from_org text NOT NULL,
    to_org   text NOT NULL,
    object   text NOT NULL,
    meta     jsonb NOT NULL
);
CREATE INDEX network_event_at ON network_event (at, seq);
CREATE INDEX network_event_from ON network_event (from_org, seq);
CREATE INDEX network_event_to ON network_event (to_org, seq);
CREATE INDEX network_event_action ON network_event (action, seq);
CREATE INDEX network_event_object ON network_event (object, seq);

-- On the hub: one row per referral, for the figures (metadata of the clear header only).
CREATE TABLE referral_fact (
    referral_id  uuid PRIMARY KEY,
    from_org     text,
    to_org       text,
    category     text,
    urgency      text,
    region       text,
    created_at   timestamptz,
    status       text NOT NULL DEFAULT 'sent',
    answered_at  timestamptz,
    completed_at timestamptz,
    closed_at    timestamptz,
    escalated    boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_fact_created ON referral_fact (created_at);

-- On the hub: the directory's published records, for coverage.
CREATE TABLE provider (
    org_id  text PRIMARY KEY,
    version integer NOT NULL,
    record  jsonb NOT NULL
);

-- Append-only for real: no UPDATE, DELETE or TRUNCATE, whoever asks; a DELETE only of records
-- below a retention cut.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'entry' THEN
        IF OLD.seq <= coalesce((SELECT max(last_seq) FROM audit.cut), 0) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on %.% refused',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON entry
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER entry_no_truncate BEFORE TRUNCATE ON entry
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoint_append_only BEFORE UPDATE OR DELETE ON checkpoint
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoint_no_truncate BEFORE TRUNCATE ON checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER cut_append_only BEFORE UPDATE OR DELETE ON cut
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER cut_no_truncate BEFORE TRUNCATE ON cut
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER node_checkpoint_append_only BEFORE UPDATE OR DELETE ON node_checkpoint
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER node_checkpoint_no_truncate BEFORE TRUNCATE ON node_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER network_event_append_only BEFORE UPDATE OR DELETE ON network_event
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER network_event_no_truncate BEFORE TRUNCATE ON network_event
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The audit service's own role: it may read and append, never change or remove. The service's
-- pool takes it with SET ROLE; a deployment may instead give it a login of its own.
DO $$
BEGIN
    CREATE ROLE relais_audit_writer NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made by another node's database on the same server
END $$;
DO $$
BEGIN
    EXECUTE format('GRANT relais_audit_writer TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'could not grant relais_audit_writer to %: %', current_user, SQLERRM;
END $$;
GRANT USAGE ON SCHEMA audit TO relais_audit_writer;
GRANT SELECT, INSERT ON entry, checkpoint, node_checkpoint, network_event, outbox, processed
    TO relais_audit_writer;
GRANT SELECT ON cut, alert, referral_fact, provider TO relais_audit_writer;
GRANT USAGE ON SEQUENCE outbox_seq_seq TO relais_audit_writer;
