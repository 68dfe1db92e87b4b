-- The documents of a referral (issue 19): files attached at either organisation, each under a
-- key of its own (secretstream XChaCha20-Poly1305, chunk indexes bound), that key sealed for
-- this node's X25519 key. Both nodes hold the same sealed chunks; destroying sealed_key (and
-- the chunks with it) erases the file here: consent withdrawn, retention.
CREATE TABLE attachments (
    attachment_id  uuid PRIMARY KEY,
    referral_id    uuid NOT NULL REFERENCES referrals,
    by_org         text NOT NULL,
    by_role        text NOT NULL,
    by_actor       text,            -- a staff member or system of this node; NULL when remote
    at             timestamptz NOT NULL,
    size           bigint NOT NULL,
    chunks         integer NOT NULL,
    stream_header  bytea,           -- NULL once erased
    sealed_meta    text,            -- name, type, digest, its signature; NULL once erased
    sealed_key     text,            -- this node's copy of the file key; NULL once erased
    key_id         text,            -- the X25519 key sealed_key is sealed for
    sender_key_id  text NOT NULL,
    signature      text NOT NULL,
    state          text NOT NULL CHECK (state IN ('on_its_way', 'arrived', 'refused', 'erased')),
    refused_reason text,
    checked_at     timestamptz,
    seq            bigserial NOT NULL
);
CREATE INDEX attachments_of ON attachments (referral_id, at, seq);

-- One row per chunk, as it crossed (sealed): a chunk seen twice is kept once. A chunk may
-- arrive before its file's announcement, so no foreign key to attachments.
CREATE TABLE attachment_chunks (
    attachment_id  uuid NOT NULL,
    chunk_index    integer NOT NULL,
    referral_id    uuid NOT NULL REFERENCES referrals,
    sealed         bytea NOT NULL,
    PRIMARY KEY (attachment_id, chunk_index)
);
