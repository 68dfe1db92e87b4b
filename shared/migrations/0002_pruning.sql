-- Bounded storage (shared/pruning.py): sent outbox rows and processed ids are deleted, oldest
-- first, once older than the retention window; these indexes find them without a full scan.
-- Unsent rows are never pruned, so they stay out of the first index.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX processed_at ON processed (processed_at);
