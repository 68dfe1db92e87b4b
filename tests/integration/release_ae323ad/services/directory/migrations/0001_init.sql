-- Member organisations: authoritative on the hub, a replica built from its broadcasts elsewhere.
CREATE TABLE organisation (
    org_id     text PRIMARY KEY,
    version    integer NOT NULL CHECK (version >= 1),
    name       jsonb NOT NULL,
    kind       text NOT NULL,
    status     text NOT NULL,
    city       text NOT NULL,
    node_url   text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Reachability of other nodes through the hub: the last probe sent to each and its answer.
CREATE TABLE link (
    org_id      text PRIMARY KEY,
    probe_id    text NOT NULL,
    probed_at   timestamptz NOT NULL,
    answered_at timestamptz,
    round_trip_ms double precision
);
