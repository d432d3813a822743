-- The W3C traceparent of the request that queued a batch, so that each task's
-- trace (a worker's, later) can link to it. Empty for a batch queued outside
-- a trace, and for every batch queued before this column existed. A constant
-- default does not rewrite the table.
ALTER TABLE batches ADD COLUMN traceparent text NOT NULL DEFAULT '';
