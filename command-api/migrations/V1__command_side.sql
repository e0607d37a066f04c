-- Command-side state that must never enter an event: password hashes, refresh tokens, and the
-- idempotency records of write requests. Each is written in the same transaction as the events
-- that change it.

CREATE TABLE IF NOT EXISTS credentials (
    user_id           uuid PRIMARY KEY,
    email             text NOT NULL UNIQUE,
    password_hash     text NOT NULL,
    -- Bumped by password changes, role changes and deactivation; access tokens carry it as `sv`.
    security_version  bigint NOT NULL DEFAULT 1,
    role              text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per refresh token, only its SHA-256 is stored. Tokens of one login form a family:
-- reusing a spent token revokes the whole family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES credentials (user_id),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id      uuid NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    state        text NOT NULL CHECK (state IN ('in_flight', 'done')),
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (user_id, method, path, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at);
