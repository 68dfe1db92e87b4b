-- A node's referrals: the ones its organisation sent (outbox) and received (inbox).
-- The person's data is only ever here as ciphertext with this node's sealed copy of the
-- data key; erasing that copy (consent revoked, retention) makes it unreadable for good.

-- The service's clock: now() plus a skew that tests (and nothing else) set. Every time the
-- service records or compares comes from here, so deadlines survive restarts and can be
-- moved forward in a test without waiting.
CREATE TABLE clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    skew     interval NOT NULL DEFAULT '0'
);
INSERT INTO clock DEFAULT VALUES;

CREATE FUNCTION clock_now() RETURNS timestamptz
    LANGUAGE sql STABLE AS $$ SELECT now() + (SELECT skew FROM referrals.clock) $$;

CREATE FUNCTION clock_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relais_referrals_clock', '');
    RETURN NULL;
END $$;
CREATE TRIGGER clock_moved AFTER UPDATE ON clock FOR EACH STATEMENT EXECUTE FUNCTION clock_moved();

CREATE TABLE referrals (
    referral_id     uuid PRIMARY KEY,
    box             text NOT NULL CHECK (box IN ('inbox', 'outbox')),
    from_org        text NOT NULL,
    to_org          text NOT NULL CHECK (to_org <> from_org),
    category        text NOT NULL,
    urgency         text NOT NULL CHECK (urgency IN ('emergency', 'priority', 'routine')),
    region          text,
    legal_basis     text NOT NULL,
    consent         jsonb,
    consent_state   text NOT NULL CHECK (
                        consent_state IN ('not_applicable', 'given', 'revoked', 'key_destroyed')),
    status          text NOT NULL,
    status_at       timestamptz NOT NULL,
    status_by       text NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL,
    acknowledge_by  timestamptz NOT NULL,
    answer_by       timestamptz NOT NULL,
    header          jsonb NOT NULL,
    signature       text NOT NULL,
    nonce           text,
    ciphertext      text,
    sealed_key      text,
    refused_reason  text,
    closed_at       timestamptz,
    key_destroyed_at timestamptz,
    shredded_at     timestamptz,
    updated_at      timestamptz NOT NULL,
    CHECK ((sealed_key IS NULL) = (key_destroyed_at IS NOT NULL OR shredded_at IS NOT NULL))
);
CREATE INDEX referrals_by_box ON referrals (box, updated_at DESC, referral_id DESC);
CREATE INDEX referrals_to_shred ON referrals (closed_at) WHERE shredded_at IS NULL;

CREATE TABLE history (
    id           bigserial PRIMARY KEY,
    referral_id  uuid NOT NULL REFERENCES referrals,
    change       text NOT NULL,
    status       text,
    at           timestamptz NOT NULL,
    by_org       text NOT NULL,
    by_actor     text,            -- a staff member or system of this node; NULL when remote
    reason       text,
    sealed_note  text,
    applied      boolean NOT NULL DEFAULT true  -- false: arrived after a step that overrides it
);
CREATE INDEX history_of ON history (referral_id, id);

CREATE TABLE alarms (
    referral_id  uuid NOT NULL REFERENCES referrals,
    timer        text NOT NULL CHECK (timer IN ('reminder', 'breach', 'expiry')),
    deadline     text NOT NULL CHECK (deadline IN ('acknowledge', 'answer')),
    due_at       timestamptz NOT NULL,
    fires_at     timestamptz NOT NULL,
    fired_at     timestamptz,
    PRIMARY KEY (referral_id, timer, deadline)
);
CREATE INDEX alarms_due ON alarms (fires_at) WHERE fired_at IS NULL;

-- A retried create (same caller, same Idempotency-Key) returns the same referral.
CREATE TABLE idempotency (
    caller       text NOT NULL,
    key          text NOT NULL,
    request      text NOT NULL,  -- SHA-256 of the request, to refuse a key reused for another
    referral_id  uuid NOT NULL REFERENCES referrals,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);

-- Envelopes this node refused (metadata only): the event is parked, the sender told.
CREATE TABLE refused (
    event_id     text PRIMARY KEY,
    referral_id  uuid NOT NULL,
    from_org     text NOT NULL,
    reason       text NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX refused_by_referral ON refused (referral_id);
