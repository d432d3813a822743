-- A failed task waits before it may be claimed again: the worker backs off
-- exponentially, with jitter, so a fault that repeats (a full disk, a bug) is
-- not retried in a tight loop. NULL means at once, as for every task queued
-- before this column existed. Nullable with no default, so adding it does not
-- rewrite the table.
ALTER TABLE tasks ADD COLUMN not_before timestamptz;
