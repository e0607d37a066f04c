-- The append-only event log. `position` is allocated at insert time and so is NOT commit order;
-- readers of the global feed order by (transaction_id, position) and read only below the oldest
-- running transaction (see docs/ARCHITECTURE.md, "Commit order").
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text NOT NULL,
    stream_version  bigint NOT NULL CHECK (stream_version >= 1),
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version >= 1),
    data            jsonb NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- clock_timestamp, not now(): a later version of a stream is always inserted after the earlier
    -- one committed, so recorded_at is monotonic per stream and `as_of` reads can filter on it.
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX IF NOT EXISTS events_feed_idx ON events (transaction_id, position);
