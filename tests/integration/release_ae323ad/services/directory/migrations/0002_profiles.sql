-- The whole published record (services, focal points, keys) as the hub broadcast it; the
-- columns of 0001 stay for listing and filtering.
ALTER TABLE organisation ADD COLUMN record jsonb;
UPDATE organisation SET record = jsonb_build_object(
    'org_id', org_id, 'version', version, 'name', name, 'kind', kind, 'status', status,
    'city', city, 'node_url', node_url);
ALTER TABLE organisation ALTER COLUMN record SET NOT NULL;

-- One row per service offered, derived from the records, for search and matching.
CREATE TABLE service (
    org_id          text NOT NULL REFERENCES organisation (org_id) ON DELETE CASCADE,
    service_id      text NOT NULL,
    category        text NOT NULL,
    languages       text[] NOT NULL,
    cities          text[] NOT NULL,
    regions         text[] NOT NULL,
    national        boolean NOT NULL,
    populations     text[] NOT NULL,
    capacity        text NOT NULL,
    takes_referrals boolean NOT NULL,
    search_text     text NOT NULL,  -- names and descriptions, lower-cased, accents removed
    PRIMARY KEY (org_id, service_id)
);
CREATE INDEX service_category ON service (category);
CREATE INDEX service_cities ON service USING gin (cities);
CREATE INDEX service_languages ON service USING gin (languages);
