-- The fiscal-year close (aggregator/src/close.rs): a year's figures frozen as final
-- (確定値) beside the live aggregates, which keep folding every event. An event that
-- arrives after the close (event_log.received_at > closed_at, on the same clock) moves
-- the live aggregates only: the difference is the adjustment since the close. A close
-- takes the plan_fingerprint row FOR UPDATE, which every batch holds FOR SHARE until it
-- commits: the close instant falls between batches, never inside one.
CREATE TABLE closed_years (
    fiscal_year      INTEGER PRIMARY KEY,
    closed_at        BIGINT  NOT NULL, -- µs since the Unix epoch, the clock of received_at
    operator         TEXT    NOT NULL,
    note             TEXT    NOT NULL,
    plan_fingerprint TEXT    NOT NULL  -- the plan's measure fingerprint at the close
);

-- The frozen figures of each closed year, one per KPI.
CREATE TABLE final_figures (
    fiscal_year INTEGER NOT NULL REFERENCES closed_years (fiscal_year) ON DELETE CASCADE,
    kpi         TEXT    NOT NULL,  -- the KPI's id in the plan
    value       DOUBLE PRECISION,  -- the final value (also in figure), for people reading SQL
    figure      TEXT    NOT NULL,  -- the whole figure as JSON (aggregator/src/close.rs Frozen)
    PRIMARY KEY (fiscal_year, kpi)
);

-- Every close and reopen, append-only: the audit of who froze or unfroze what.
CREATE TABLE year_close_log (
    seq         BIGSERIAL PRIMARY KEY,
    fiscal_year INTEGER NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('close', 'reopen')),
    at          BIGINT  NOT NULL, -- µs since the Unix epoch
    operator    TEXT    NOT NULL,
    note        TEXT    NOT NULL,
    changed     TEXT    NOT NULL  -- JSON: per KPI, the final value and the live one
);
