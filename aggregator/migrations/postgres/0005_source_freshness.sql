-- When each line system (source) was last heard from, kept with the events so that it
-- survives restarts and is the same for every role that reads it. One row per source a
-- role's configuration declares (tokens, topic allow lists, inboxes, rules cadences):
-- a batch only moves the rows of sources already declared, so the set of sources stays
-- the configured one and never grows from request data.
CREATE TABLE source_freshness (
    source        TEXT   COLLATE "C" PRIMARY KEY, -- a configured source label
    known_since   BIGINT NOT NULL,                 -- µs since the Unix epoch: first declared
    last_received BIGINT                           -- µs: latest arrival of one of its events
                                                   -- (any outcome); NULL: never
) WITH (fillfactor = 50);
