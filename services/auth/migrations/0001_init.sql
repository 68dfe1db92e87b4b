-- Staff accounts of this node. The password is kept only as an argon2id hash (PHC string).
-- Usernames are lower-case so that "Amina" and "amina" cannot be two people.
CREATE TABLE users (
    username      text PRIMARY KEY CHECK (username ~ '^[a-z][a-z0-9._-]{2,39}$'),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role          text NOT NULL
                  CHECK (role IN ('caseworker', 'focal_point', 'coordinator', 'auditor', 'admin')),
    display_name  text CHECK (length(display_name) BETWEEN 1 AND 120),
    language      text NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'ar', 'en')),
    disabled      boolean NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (disabled = (disabled_at IS NOT NULL))
);

-- Bearer tokens. Only the SHA-256 digest of the secret is stored: a leaked table grants nothing.
-- "access": a user's login token, always with an expiry.
-- "api": an organisation-scoped token for a member system, named, with its own roles.
CREATE TABLE tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    kind         text NOT NULL CHECK (kind IN ('access', 'api')),
    username     text REFERENCES users (username),
    name         text CHECK (length(name) BETWEEN 1 AND 80),
    org          text CHECK (org ~ '^[a-z][a-z0-9_]{1,30}$'),
    roles        text[] CHECK (
                     cardinality(roles) > 0
                     AND roles <@ ARRAY['caseworker', 'focal_point', 'coordinator', 'auditor']
                 ),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CHECK (
        (kind = 'access' AND username IS NOT NULL AND expires_at IS NOT NULL
            AND name IS NULL AND org IS NULL AND roles IS NULL)
        OR (kind = 'api' AND username IS NULL
            AND name IS NOT NULL AND org IS NOT NULL AND roles IS NOT NULL)
    )
);
CREATE INDEX tokens_of_user ON tokens (username) WHERE kind = 'access';
CREATE INDEX tokens_api ON tokens (created_at) WHERE kind = 'api';
