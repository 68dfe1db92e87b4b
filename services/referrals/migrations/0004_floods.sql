-- A per-sender budget of refused envelopes (issue 16, back-pressure): past it, the sender's
-- further refused envelopes are parked as one incident instead of a dead letter and an answer
-- each. ``watch`` counts one sender's refusals since the start of its window; ``floods`` is
-- the incidents, each reported to the hub.
CREATE TABLE refusal_watch (
    sender      text PRIMARY KEY,
    since       timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    refused     integer NOT NULL DEFAULT 0,
    incident_id uuid,
    reported_at timestamptz
);
CREATE TABLE floods (
    incident_id uuid PRIMARY KEY,
    sender      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    refused     integer NOT NULL
);
CREATE INDEX floods_recent ON floods (last_at DESC);
