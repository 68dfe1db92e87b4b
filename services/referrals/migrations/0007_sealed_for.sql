-- Re-sealing after a key rotation (issue 16): which of this node's X25519 keys a referral's
-- data key is sealed for. NULL: the one its signed header names (the recipient's key in the
-- inbox, the sender's own in the outbox), as every row was before; a re-seal to the node's
-- current key sets it, so that the retired private key can be destroyed. The header itself is
-- signed by the sender and stays as it came.
ALTER TABLE referrals ADD COLUMN sealed_for text;
CREATE INDEX referrals_sealed_for ON referrals ((coalesce(sealed_for, CASE box
    WHEN 'inbox' THEN header->>'recipient_key_id'
    ELSE header->>'sender_encryption_key_id' END)))
    WHERE sealed_key IS NOT NULL;
