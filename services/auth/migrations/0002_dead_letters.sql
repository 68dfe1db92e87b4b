-- What the node's administrators did with each dead letter (shared/deadletters.py): the
-- letter itself is JetStream's notice in the DEADLETTER stream, ``id`` its sequence there; the
-- message stays in its own stream. A row also names the message, so that a DEADLETTER stream
-- made again from empty (its sequences starting over) is not mistaken for the old one.
CREATE TABLE dead_letters (
    id          bigint PRIMARY KEY CHECK (id > 0),
    stream      text NOT NULL,
    stream_seq  bigint NOT NULL,
    consumer    text NOT NULL,
    state       text NOT NULL CHECK (state IN ('open', 'redelivered', 'discarded')),
    note        text CHECK (length(note) <= 500),  -- why it was discarded
    handled_by  text,
    handled_at  timestamptz,
    attempts    integer NOT NULL DEFAULT 0,  -- redeliveries tried
    last_error  text CHECK (length(last_error) <= 500),  -- why the last one failed
    CHECK ((state = 'open') = (handled_at IS NULL))
);
