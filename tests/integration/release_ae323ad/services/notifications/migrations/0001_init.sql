-- The organisation's overrides of the default rules (domain.DEFAULT_RULES): one row per kind.
CREATE TABLE rule (
    kind        text PRIMARY KEY,
    enabled     boolean NOT NULL,
    roles       text[] NOT NULL,
    case_worker boolean NOT NULL,
    channels    text[] NOT NULL,
    webhook     boolean NOT NULL,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A staff member's contact and choices. auth.users holds no e-mail or phone: they live here,
-- for this service alone.
CREATE TABLE preference (
    username   text PRIMARY KEY,
    email      text CHECK (length(email) <= 254),
    phone      text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    language   text CHECK (language IN ('fr', 'ar', 'en')),
    digest     boolean NOT NULL DEFAULT false,
    channels   jsonb NOT NULL DEFAULT '{}',  -- kind -> [channel], overriding the rule's
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One person's notification of one event: the in-app feed. Exactly one per event and person.
CREATE TABLE notification (
    id         uuid PRIMARY KEY,
    event_id   text NOT NULL,
    recipient  text NOT NULL,
    kind       text NOT NULL,
    facts      jsonb NOT NULL,
    emergency  boolean NOT NULL,
    created_at timestamptz NOT NULL,
    read_at    timestamptz,
    UNIQUE (event_id, recipient)
);
CREATE INDEX notification_feed ON notification (recipient, created_at DESC, id);
CREATE INDEX notification_unread ON notification (recipient) WHERE read_at IS NULL;

-- A member system's endpoint. The secret signs every delivery, so it is kept as is.
CREATE TABLE webhook (
    id                   uuid PRIMARY KEY,
    url                  text NOT NULL,
    secret               text NOT NULL,
    kinds                text[] NOT NULL DEFAULT '{}',
    enabled              boolean NOT NULL DEFAULT true,
    consecutive_failures integer NOT NULL DEFAULT 0,
    disabled_at          timestamptz,
    disabled_reason      text,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (enabled = (disabled_at IS NULL))
);

-- The work queue of what goes out (e-mail, SMS, webhook), sent by the worker, never by the
-- consumer: a failing channel holds up nothing else. "held" waits for the person's digest.
CREATE TABLE delivery (
    id               uuid PRIMARY KEY,
    key              text NOT NULL UNIQUE,  -- event and recipient and channel: one each
    channel          text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    recipient        text NOT NULL,         -- a username, or the webhook's id
    webhook_id       uuid REFERENCES webhook (id) ON DELETE CASCADE,
    kind             text NOT NULL,         -- a notification kind, or "digest"
    items            jsonb NOT NULL,        -- [{kind, facts}]: one, or a digest's
    state            text NOT NULL
                     CHECK (state IN ('pending', 'held', 'sent', 'failed', 'digested', 'cancelled')),
    emergency        boolean NOT NULL DEFAULT false,
    attempts         integer NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL,
    give_up_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    last_error       text,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL))
);
CREATE INDEX delivery_due ON delivery (due_at) WHERE state = 'pending';
CREATE INDEX delivery_held ON delivery (recipient, channel) WHERE state = 'held';

-- Every attempt and its outcome: the delivery log the organisation's admin reads.
CREATE TABLE attempt (
    seq         bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES delivery (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('sent', 'failed', 'gave_up')),
    detail      text NOT NULL DEFAULT '',
    duration_ms integer NOT NULL
);
CREATE INDEX attempt_of_delivery ON attempt (delivery_id);

-- What this node last knew of its own organisation's directory record.
CREATE TABLE organisation_seen (
    org_id  text PRIMARY KEY,
    version integer NOT NULL,
    status  text NOT NULL,
    key_ids text[] NOT NULL
);
