-- What each measure meant when the aggregates were folded (aggregator/src/plan/
-- fingerprint.rs): a role started with a plan whose measures mean something else is
-- refused until `mieruka replay --apply` rebuilds the aggregates and records the new
-- fingerprints. A store opened for the first time adopts its plan's.
CREATE TABLE measure_fingerprints (
    key         TEXT PRIMARY KEY, -- 'm:<measure id>' or 'k:<milestone KPI id>'
    fingerprint TEXT NOT NULL
) WITHOUT ROWID;

-- One fingerprint of the whole set, which every batch reads in its write transaction:
-- a writer whose plan differs never commits.
CREATE TABLE plan_fingerprint (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL
);
