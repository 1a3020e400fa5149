-- mieruka's embedded store (SQLite). Aggregates are keyed by measure/KPI ids, never by
-- positions, so reordering the plan file does not move numbers between measures.

-- Bumped by every committed batch: a writer that sees another writer's bump reloads its
-- in-memory ledger before applying (several processes may share one file).
CREATE TABLE meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO meta (id, version) VALUES (1, 0);

-- Append-only log of accepted events (they carry no personal data). A rowid table: new
-- rows append at the end of its B-tree, and the (source, event_id) key lives in a
-- small unique index, which makes batched inserts of ~250-byte bodies much cheaper
-- than a clustered WITHOUT ROWID table.
CREATE TABLE event_log (
    seq         INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    fingerprint INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    occurred_at INTEGER NOT NULL, -- microseconds since the Unix epoch
    day         INTEGER NOT NULL, -- days since 1970-01-01 in Asia/Tokyo
    body        TEXT    NOT NULL, -- canonical JSON
    voided      INTEGER NOT NULL DEFAULT 0,
    moves_level INTEGER NOT NULL DEFAULT 0, -- its type can move a level (a stock)
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX event_log_key ON event_log (source, event_id);
-- A snapshot that becomes its day's latest needs that day's level deltas: only events
-- that can move a level are indexed by day (certificates and applications are not).
CREATE INDEX event_log_level_day ON event_log (day) WHERE moves_level = 1;

-- Voids whose original has not arrived yet.
CREATE TABLE pending_voids (
    source    TEXT NOT NULL,
    target_id TEXT NOT NULL,
    PRIMARY KEY (source, target_id)
) WITHOUT ROWID;

CREATE TABLE flows (
    measure TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    amount  INTEGER NOT NULL,
    PRIMARY KEY (measure, day)
) WITHOUT ROWID;

CREATE TABLE distinct_values (
    measure     TEXT    NOT NULL,
    fiscal_year INTEGER NOT NULL,
    value       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (measure, fiscal_year, value)
) WITHOUT ROWID;

CREATE TABLE level_days (
    measure       TEXT    NOT NULL,
    day           INTEGER NOT NULL,
    delta         INTEGER NOT NULL,
    snap_at       INTEGER,
    snap_id       TEXT,
    snap_value    INTEGER,
    snap_after    INTEGER,
    opening_id    TEXT,
    opening_value INTEGER,
    PRIMARY KEY (measure, day)
) WITHOUT ROWID;

CREATE TABLE stages (
    kpi   TEXT    NOT NULL,
    day   INTEGER NOT NULL,
    stage TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kpi, day, stage)
) WITHOUT ROWID;

-- Latest occurred_at behind each measure ('m:<id>') or milestone KPI ('k:<id>').
CREATE TABLE as_of (
    key TEXT    PRIMARY KEY,
    at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every refused event, with its reason and its raw text (personal numbers masked).
CREATE TABLE rejected (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    source      TEXT    NOT NULL, -- the configured source label, never request data
    position    TEXT    NOT NULL, -- index in a request, file:line, or topic/partition@offset
    event_id    TEXT,
    reason      TEXT    NOT NULL,
    field       TEXT,
    message     TEXT    NOT NULL,
    raw         TEXT    NOT NULL
);
CREATE INDEX rejected_reason ON rejected (reason);
