-- The event log is the store's hottest table (a row per accepted event, written with
-- COPY). Its keys compare bytewise (COLLATE "C": ids are opaque, no language order is
-- wanted), and only events whose type can move a level are indexed by day (what a
-- snapshot's day needs): certificates and applications, most of the volume, are not.
ALTER TABLE event_log
    ALTER COLUMN source TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    -- Rows logged before this column existed are conservatively marked; readers also
    -- filter on the type.
    ADD COLUMN moves_level BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE event_log ALTER COLUMN moves_level DROP DEFAULT;
DROP INDEX event_log_day;
CREATE INDEX event_log_level_day ON event_log (day) WHERE moves_level AND NOT voided;

ALTER TABLE pending_voids
    ALTER COLUMN source TYPE TEXT COLLATE "C",
    ALTER COLUMN target_id TYPE TEXT COLLATE "C";
