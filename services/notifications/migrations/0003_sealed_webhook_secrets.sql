-- Webhook secrets are kept sealed (webhook_secrets.SecretSeal: XChaCha20-Poly1305 under a key
-- derived from the node's RELAIS_SECRET_KEY, which SQL does not have). A row from before keeps
-- its clear secret until the service's start seals it and clears "secret"; one of the two
-- columns is always set, never both once sealed.
ALTER TABLE webhook ADD COLUMN sealed_secret text;
ALTER TABLE webhook ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE webhook ADD CONSTRAINT webhook_one_secret
    CHECK ((secret IS NULL) <> (sealed_secret IS NULL));
