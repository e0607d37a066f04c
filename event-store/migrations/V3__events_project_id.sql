-- The project an event belongs to (`domain::stream_owner`), copied from its metadata by the append
-- statement, so one project's events can be found (and followed) without reading every event.
-- Adding a nullable column without a default only changes the catalogue. The index is partial:
-- every existing row is NULL here, so building it scans the table once and inserts nothing.
ALTER TABLE events ADD COLUMN IF NOT EXISTS project_id uuid;
CREATE INDEX IF NOT EXISTS events_project_idx ON events (project_id, transaction_id, position)
    WHERE project_id IS NOT NULL;

-- Progress of the batched back-fills run at start-up (`event_store::backfill`): each fills rows
-- up to `target`, the last position written before this migration, and commits in batches so no
-- transaction holds the cluster-wide xmin horizon back for long. Rows appended afterwards are
-- written whole by the append statement.
CREATE TABLE IF NOT EXISTS event_backfills (
    name          text PRIMARY KEY,
    done_through  bigint NOT NULL,
    target        bigint NOT NULL
);
INSERT INTO event_backfills (name, done_through, target)
SELECT 'events.project_id', 0, coalesce(max(position), 0) FROM events
ON CONFLICT (name) DO NOTHING;
