-- The log's unique key ordered (generation, event_id, source) instead of (generation,
-- source, event_id). Every lookup names the whole key, so either order serves it; but a
-- B-tree compares its columns in order, and a text column after another text has no
-- fixed place in the index tuple: with source second, nearly every comparison of an
-- insert read both texts, and found the event id (the column that tells keys apart)
-- the slow way. With the id second, most comparisons end at it. Measured with the Kafka
-- bench (README): about a tenth of PostgreSQL's CPU per logged event with increasing
-- ids, a twentieth with ids in no order. Rebuilds the index over the existing log once.
ALTER TABLE event_log DROP CONSTRAINT event_log_key;
ALTER TABLE event_log ADD CONSTRAINT event_log_key UNIQUE (generation, event_id, source);
