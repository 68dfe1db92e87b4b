-- On the hub: second leaf links refused for a member's credentials (issue 16, a copied nkey
-- is noticed). One incident per member while the refusals keep coming, as floods are.
CREATE TABLE link_refusal (
    incident_id uuid PRIMARY KEY,
    org_id      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    refused     integer NOT NULL,
    host        text  -- the address of the last refused link: a server's, where to look
);
CREATE INDEX link_refusal_recent ON link_refusal (org_id, last_at DESC);
