-- Event bodies and metadata are stored as `json` (the text as written), not `jsonb`. The store never
-- queries inside them; it writes them once and reads them whole, over and over (command folds, the
-- projector, the relays, history, time travel). `jsonb` cost a parse into its binary form on every
-- append and a conversion back to text on every read: in a profile of `backforge replay`, half of
-- PostgreSQL's CPU went to printing jsonb (docs/benchmarks.md). `json` keeps the exact bytes the
-- domain serialised (member order included); ad-hoc SQL can still cast with `data::jsonb`.
ALTER TABLE events
    ALTER COLUMN data TYPE json USING data::json,
    ALTER COLUMN metadata DROP DEFAULT,
    ALTER COLUMN metadata TYPE json USING metadata::json,
    ALTER COLUMN metadata SET DEFAULT '{}'::json;
