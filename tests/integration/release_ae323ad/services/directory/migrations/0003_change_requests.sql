-- On a member node: the changes it asked the hub to publish, and what became of each.
CREATE TABLE change_request (
    org_id       text NOT NULL,
    version      integer NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'requested'
                 CHECK (state IN ('requested', 'published', 'refused')),
    reason       text,
    field        text,
    PRIMARY KEY (org_id, version)
);
