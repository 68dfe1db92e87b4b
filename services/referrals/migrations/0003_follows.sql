-- Sending again (issue 14, "no dead ends"): a referral declined, expired or refused can be
-- sent to another organisation as a new referral that follows it. The link is the sending
-- node's own record: it is not in the envelope, so the new recipient never learns that an
-- earlier organisation turned the person away. A history step may point at the referral it
-- is about ("sent again as ...", "follows ...").
ALTER TABLE referrals ADD COLUMN follows uuid REFERENCES referrals;
CREATE INDEX referrals_following ON referrals (follows) WHERE follows IS NOT NULL;
ALTER TABLE history ADD COLUMN link uuid;
