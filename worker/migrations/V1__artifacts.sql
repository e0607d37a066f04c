-- Generated ZIPs, content-addressed: the same project version and generator version give the same
-- bytes, so a SHA-256 names one artifact however many generations produced it.
CREATE TABLE IF NOT EXISTS artifacts (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content     bytea NOT NULL,
    size_bytes  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
