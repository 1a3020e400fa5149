-- Duplicates seen per measure and day (`mieruka explain`'s "duplicates seen"): an event
-- re-sent with the same key and the same body adds 1 to each (measure, day of its
-- occurred_at) its body feeds, in its batch's transaction. Duplicates are not logged, so
-- `mieruka replay --apply` cannot rebuild this table and leaves it untouched: an audit
-- counter, not an aggregate. Milestone stages are not counted here.
CREATE TABLE duplicate_counts (
    measure TEXT    NOT NULL, -- the measure's id in the plan
    day     INTEGER NOT NULL, -- days since 1970-01-01 in Asia/Tokyo
    n       BIGINT  NOT NULL,
    PRIMARY KEY (measure, day)
) WITHOUT ROWID;
