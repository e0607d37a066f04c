-- Live records, command side: what a record write and a schema change decide against, written in
-- the same transaction as the events (see docs/ARCHITECTURE.md, "Live records"). Rebuilt from the
-- events by `backforge rebuild-constraints`.

-- One row per entity that has been written to: the hash of the schema its records were last
-- checked against. A record write takes it FOR SHARE and re-decides if the hash moved; a schema
-- change takes it FOR UPDATE, checks every record against the new schema and moves it.
CREATE TABLE IF NOT EXISTS entity_schema (
    project_id uuid NOT NULL,
    feature_id uuid NOT NULL,
    schema_hash bytea NOT NULL,
    PRIMARY KEY (project_id, feature_id)
);

-- Every live record with its stored values: a schema change counts the records it would break.
CREATE TABLE IF NOT EXISTS live_records (
    record_id uuid PRIMARY KEY,
    project_id uuid NOT NULL,
    feature_id uuid NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS live_records_entity_idx ON live_records (project_id, feature_id);

-- One row per unique constraint a record's values hold (a null member holds none): the primary
-- key is the constraint.
CREATE TABLE IF NOT EXISTS record_unique (
    project_id uuid NOT NULL,
    feature_id uuid NOT NULL,
    constraint_key text NOT NULL,
    value_hash bytea NOT NULL,
    record_id uuid NOT NULL REFERENCES live_records (record_id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, feature_id, constraint_key, value_hash)
);
CREATE INDEX IF NOT EXISTS record_unique_record_idx ON record_unique (record_id);

-- A child's reference fields: inserting one locks its parent (the foreign key), and deleting a
-- parent still referenced fails on it.
CREATE TABLE IF NOT EXISTS record_refs (
    child_id uuid NOT NULL REFERENCES live_records (record_id) ON DELETE CASCADE,
    field text NOT NULL,
    parent_id uuid NOT NULL REFERENCES live_records (record_id),
    PRIMARY KEY (child_id, field)
);
CREATE INDEX IF NOT EXISTS record_refs_parent_idx ON record_refs (parent_id);
