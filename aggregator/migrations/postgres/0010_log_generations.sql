-- The event log in generations. With event ids in no order (UUIDs), every insert into
-- the log's key index (source, event_id) lands on a random page of it; once that index
-- outgrows PostgreSQL's buffers, most of PostgreSQL's time goes to moving its pages in
-- and out of them, and to writing whole pages to the WAL after each checkpoint. The
-- unique key becomes (generation, source, event_id): a batch logs into the current
-- generation only, whose part of the index is small and stays in the buffers. A key's
-- uniqueness across generations is kept by the aggregator: the current generation by
-- this index (a re-sent key fails the COPY), the sealed ones by a filter of their key
-- hashes (table log_key_hashes) that sends every key they may hold to a lookup over all
-- generations. See aggregator/src/store/pg/generations.rs.
ALTER TABLE event_log ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE event_log ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE event_log DROP CONSTRAINT event_log_pkey;
ALTER TABLE event_log ADD CONSTRAINT event_log_key UNIQUE (generation, source, event_id);

-- The generation batches log into: one row, read FOR SHARE by every batch and updated
-- by the batch that seals the generation (which therefore waits for the batches logging
-- into it). A log that had rows before this migration is generation 0, sealed at once;
-- its key hashes are computed by the first mieruka process that opens the store
-- (`hashed = FALSE` until then).
CREATE TABLE log_generation (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    current INTEGER NOT NULL,
    hashed  BOOLEAN NOT NULL
);
INSERT INTO log_generation (id, current, hashed)
SELECT 1, CASE WHEN e THEN 1 ELSE 0 END, NOT e
FROM (SELECT EXISTS (SELECT 1 FROM event_log) AS e) AS x;

-- The 64-bit hashes of the keys each batch logged (8 bytes each, big-endian, in
-- `hashes`), with their count and the bytes their keys take: what fills the filter of the
-- sealed generations, and tells when the current one is full.
CREATE TABLE log_key_hashes (
    generation INTEGER NOT NULL,
    keys       INTEGER NOT NULL,
    key_bytes  BIGINT  NOT NULL,
    hashes     BYTEA   NOT NULL
);
CREATE INDEX log_key_hashes_generation ON log_key_hashes (generation);
