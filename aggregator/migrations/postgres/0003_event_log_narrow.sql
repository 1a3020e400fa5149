-- The log's rows are most of what a batch writes: heap pages, extending the table page
-- by page, and WAL. A row no longer repeats its envelope (source, id, type and time are
-- columns already) in a canonical body: new rows keep only the canonical `data` object
-- and the void target, and readers rebuild the body from the columns. Rows logged
-- before this keep their body.
ALTER TABLE event_log
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN data TEXT,
    ADD COLUMN voids TEXT;
ALTER TABLE event_log ADD CONSTRAINT event_log_body_or_data
    CHECK (body IS NOT NULL OR data IS NOT NULL) NOT VALID;
