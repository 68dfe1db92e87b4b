-- A stable order for paging the inbox and outbox: seq, this node's creation order. The lists
-- were ordered by updated_at, which every step changes: a referral that moved while a client
-- paged jumped over the cursor and was never seen (or was seen twice). seq never changes.
-- Existing rows are numbered in their creation order.
CREATE SEQUENCE referrals_seq AS bigint;
ALTER TABLE referrals ADD COLUMN seq bigint;
UPDATE referrals SET seq = ordered.n
FROM (SELECT referral_id, row_number() OVER (ORDER BY created_at, referral_id) AS n
      FROM referrals) AS ordered
WHERE referrals.referral_id = ordered.referral_id;
SELECT setval('referrals_seq', coalesce((SELECT max(seq) FROM referrals), 0) + 1, false);
ALTER TABLE referrals
    ALTER COLUMN seq SET DEFAULT nextval('referrals_seq'),
    ALTER COLUMN seq SET NOT NULL;
ALTER SEQUENCE referrals_seq OWNED BY referrals.seq;
CREATE UNIQUE INDEX referrals_in_order ON referrals (seq);
CREATE INDEX referrals_by_box_in_order ON referrals (box, seq DESC);
DROP INDEX referrals_by_box;
