-- On the hub: the incidents nodes reported (issue 16, back-pressure): one organisation sent a
-- node more refused envelopes than its budget; the coordinators see them and may suspend it.
CREATE TABLE flood_report (
    incident_id text PRIMARY KEY,
    reporter    text NOT NULL,
    sender      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    refused     integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flood_report_recent ON flood_report (last_at DESC);
