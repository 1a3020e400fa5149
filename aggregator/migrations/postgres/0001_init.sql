-- mieruka's shared store (PostgreSQL), written by several aggregator replicas at once.
-- Aggregates are keyed by measure/KPI ids, never by positions, so reordering the plan
-- file does not move numbers between measures. Integers that count or sum are BIGINT;
-- days (days since 1970-01-01 in Asia/Tokyo), fiscal years and Kafka partitions are
-- INTEGER, as they are i32 in the code.

-- Append-only log of accepted events (they carry no personal data).
CREATE TABLE event_log (
    source      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    fingerprint BIGINT  NOT NULL,
    type        TEXT    NOT NULL,
    occurred_at BIGINT  NOT NULL, -- microseconds since the Unix epoch
    day         INTEGER NOT NULL, -- days since 1970-01-01 in Asia/Tokyo
    body        TEXT    NOT NULL, -- canonical JSON
    voided      BOOLEAN NOT NULL DEFAULT FALSE,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (source, event_id)
);
-- A snapshot needs the live level-moving events of its day.
CREATE INDEX event_log_day ON event_log (day, type) WHERE NOT voided;

-- Voids whose original has not arrived yet.
CREATE TABLE pending_voids (
    source    TEXT NOT NULL,
    target_id TEXT NOT NULL,
    PRIMARY KEY (source, target_id)
);

-- The aggregate tables are updated in place by every batch: leave room for HOT updates.
CREATE TABLE flows (
    measure TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    amount  BIGINT  NOT NULL,
    PRIMARY KEY (measure, day)
) WITH (fillfactor = 80);

CREATE TABLE distinct_values (
    measure     TEXT    NOT NULL,
    fiscal_year INTEGER NOT NULL,
    value       TEXT    NOT NULL,
    n           BIGINT  NOT NULL,
    PRIMARY KEY (measure, fiscal_year, value)
) WITH (fillfactor = 80);

CREATE TABLE level_days (
    measure       TEXT    NOT NULL,
    day           INTEGER NOT NULL,
    delta         BIGINT  NOT NULL,
    snap_at       BIGINT,
    snap_id       TEXT,
    snap_value    BIGINT,
    snap_after    BIGINT,
    opening_id    TEXT,
    opening_value BIGINT,
    PRIMARY KEY (measure, day)
) WITH (fillfactor = 80);

CREATE TABLE stages (
    kpi   TEXT    NOT NULL,
    day   INTEGER NOT NULL,
    stage TEXT    NOT NULL,
    n     BIGINT  NOT NULL,
    PRIMARY KEY (kpi, day, stage)
) WITH (fillfactor = 80);

-- Latest occurred_at behind each measure ('m:<id>') or milestone KPI ('k:<id>').
CREATE TABLE as_of (
    key TEXT   PRIMARY KEY,
    at  BIGINT NOT NULL
) WITH (fillfactor = 80);

-- The next offset to consume per Kafka partition, committed in the same transaction as
-- the batch it ends; a consumer updates it only from the value it believes is stored
-- (fencing a consumer that lost its partition in a rebalance).
CREATE TABLE source_positions (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Every refused event, with its reason and its raw text (personal numbers masked).
CREATE TABLE rejected (
    id              BIGSERIAL PRIMARY KEY,
    received_at     BIGINT  NOT NULL,
    source          TEXT    NOT NULL, -- the configured source label, never request data
    position        TEXT    NOT NULL, -- index in a request, file:line, or topic/partition@offset
    event_id        TEXT,
    reason          TEXT    NOT NULL,
    field           TEXT,
    message         TEXT    NOT NULL,
    raw             TEXT    NOT NULL,
    topic           TEXT,             -- set for events read from Kafka
    kafka_partition INTEGER,
    kafka_offset    BIGINT
);
CREATE INDEX rejected_reason ON rejected (reason);
CREATE INDEX rejected_kafka ON rejected (topic, kafka_partition, kafka_offset)
    WHERE topic IS NOT NULL;
