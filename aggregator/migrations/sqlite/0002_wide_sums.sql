-- Summed amounts no longer fit 64 bits. One event's value is an i64 (whatever bounds a
-- plan declares), so a flow's day, a level's deltas or a snapshot's `after` can pass
-- i64::MAX after two events; the store sums in i128 instead. SQLite's INTEGER is 64-bit,
-- and an integer-looking TEXT stored in a column of INTEGER or NUMERIC affinity that does
-- not fit 64 bits is silently turned into a REAL (lossy). So the summed columns become
-- TEXT affinity and hold decimal text ("-12", "10000000000000000000"), which the store
-- parses to i128; nothing in SQL computes with them.
--
-- SQLite cannot change a column's type: each table is rebuilt (create, copy with
-- CAST(... AS TEXT), drop, rename) with the same keys and constraints. The existing
-- values are 64-bit integers, and CAST gives their exact decimal text. Neither table has
-- indexes beyond its primary key.

CREATE TABLE flows_wide (
    measure TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    amount  TEXT    NOT NULL, -- decimal text of an i128
    PRIMARY KEY (measure, day)
) WITHOUT ROWID;
INSERT INTO flows_wide (measure, day, amount)
    SELECT measure, day, CAST(amount AS TEXT) FROM flows;
DROP TABLE flows;
ALTER TABLE flows_wide RENAME TO flows;

CREATE TABLE level_days_wide (
    measure       TEXT    NOT NULL,
    day           INTEGER NOT NULL,
    delta         TEXT    NOT NULL, -- decimal text of an i128, as are the values below
    snap_at       INTEGER,
    snap_id       TEXT,
    snap_value    TEXT,
    snap_after    TEXT,
    opening_id    TEXT,
    opening_value TEXT,
    PRIMARY KEY (measure, day)
) WITHOUT ROWID;
INSERT INTO level_days_wide
    (measure, day, delta, snap_at, snap_id, snap_value, snap_after, opening_id, opening_value)
    SELECT measure, day, CAST(delta AS TEXT), snap_at, snap_id, CAST(snap_value AS TEXT),
           CAST(snap_after AS TEXT), opening_id, CAST(opening_value AS TEXT)
    FROM level_days;
DROP TABLE level_days;
ALTER TABLE level_days_wide RENAME TO level_days;
