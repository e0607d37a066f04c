-- The AI catalog as the command side decides with it, written with the catalog's events in the
-- same transaction: which model a request without `model` uses (the default), whether a named
-- model exists or is retired, and which prompt version a purpose uses. The events are the truth;
-- these rows follow them in commit order (writes that change the default take one advisory lock,
-- so their order here is their commit order).
CREATE TABLE IF NOT EXISTS ai_model_catalog (
    name text PRIMARY KEY,
    -- The whole `ModelConfig` as the event carries it (`json`: the text as written, prices as
    -- decimal strings).
    config json NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    retired boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL
);
-- At most one default: a write that breaks the rule fails rather than leaving two.
CREATE UNIQUE INDEX IF NOT EXISTS ai_model_catalog_one_default ON ai_model_catalog ((true)) WHERE is_default;

-- Every version of every prompt template.
CREATE TABLE IF NOT EXISTS ai_prompt_catalog (
    name text NOT NULL,
    version integer NOT NULL,
    purpose text NOT NULL,
    system text NOT NULL,
    template text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS ai_prompt_catalog_purpose_idx
    ON ai_prompt_catalog (purpose, created_at DESC);
