-- Which canonical form a record's hash covers (services/audit/domain.py): 'rfc8785' (RFC 8785,
-- JSON Canonicalization Scheme, the column itself among the fields hashed) for records
-- chained from now on; 'legacy' (Python's sorted-key JSON) for the ones chained before. The
-- default keeps those as they were; the audit service always writes the column.
ALTER TABLE entry ADD COLUMN canon text NOT NULL DEFAULT 'legacy'
    CHECK (canon IN ('legacy', 'rfc8785'));
