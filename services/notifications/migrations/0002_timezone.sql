-- The zone a person reads the times of their mails and SMS in (an IANA name, checked by the
-- API with Python's zoneinfo); NULL: the node's zone. Stored only: never converted in SQL.
ALTER TABLE preference ADD COLUMN timezone text CHECK (length(timezone) <= 64);
