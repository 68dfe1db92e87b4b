-- The conversation of a referral (issue 19): messages between its two organisations, each
-- sealed under the referral's data key (its referral, id and author organisation bound as
-- associated data) and signed by the writer's node. Both nodes hold the same messages, sealed;
-- erasing the data key (consent, retention) erases them too, and sealed_text goes with it.
CREATE TABLE messages (
    message_id     uuid PRIMARY KEY,
    referral_id    uuid NOT NULL REFERENCES referrals,
    by_org         text NOT NULL,
    by_role        text NOT NULL,
    by_actor       text,            -- a staff member or system of this node; NULL when remote
    at             timestamptz NOT NULL,
    sealed_text    text,            -- NULL once erased
    sender_key_id  text NOT NULL,
    signature      text NOT NULL,
    seq            bigserial NOT NULL  -- this node's arrival order: what "read up to" counts
);
CREATE INDEX messages_of ON messages (referral_id, at, seq);

-- Unread: the other organisation's messages since a person of this organisation last read
-- the thread, kept on the referral so that the inbox and outbox show them at no cost.
ALTER TABLE referrals ADD COLUMN unread_messages integer NOT NULL DEFAULT 0;
