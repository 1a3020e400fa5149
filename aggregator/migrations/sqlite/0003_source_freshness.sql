-- When each line system (source) was last heard from, kept with the events so that it
-- survives restarts. One row per source a role's configuration declares (tokens, topic
-- allow lists, inboxes, rules cadences): a batch only moves the rows of sources already
-- declared, so the set of sources stays the configured one and never grows from
-- request data.
CREATE TABLE source_freshness (
    source        TEXT    PRIMARY KEY, -- a configured source label
    known_since   INTEGER NOT NULL,    -- µs since the Unix epoch: first declared
    last_received INTEGER              -- µs: latest arrival of one of its events (any
                                       -- outcome); NULL: never
) WITHOUT ROWID;
