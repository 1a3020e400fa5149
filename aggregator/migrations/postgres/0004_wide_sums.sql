-- Summed amounts no longer fit 64 bits. One event's value is an i64 (whatever bounds a
-- plan declares), so a flow's day, a level's deltas or a snapshot's `after` can pass
-- BIGINT's range after two events; the store sums in i128 instead. These columns become
-- NUMERIC(39, 0): integral, and 39 digits hold every i128. The store reads them as text
-- and writes text arrays cast to NUMERIC (no decimal type in the Rust code), and never
-- computes with them in SQL. Counts (distinct `n`, stage `n`) stay BIGINT.
--
-- Only the aggregate tables change, and they are small (measures × days): the rewrite
-- this ALTER makes is quick, and a batch touches few of their rows (pre-aggregated), so
-- passing them as text costs little. The event log, the hot path, is untouched.
-- Existing BIGINT values convert exactly.
ALTER TABLE flows
    ALTER COLUMN amount TYPE NUMERIC(39, 0);

ALTER TABLE level_days
    ALTER COLUMN delta TYPE NUMERIC(39, 0),
    ALTER COLUMN snap_value TYPE NUMERIC(39, 0),
    ALTER COLUMN snap_after TYPE NUMERIC(39, 0),
    ALTER COLUMN opening_value TYPE NUMERIC(39, 0);
