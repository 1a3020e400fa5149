-- `mieruka rejected --source S --reason R --since T` on a table that only grows: the
-- listing reads the newest rows of one source (or of all) from an instant on, and the
-- summary counts them by source and reason, without reading the whole table.
CREATE INDEX rejected_received ON rejected (received_at);
CREATE INDEX rejected_source_received ON rejected (source, received_at);
