-- The security-version cache (`runtime::security_cache`) evicts a user's entry when their
-- credentials change. The trigger is the one place that sends it, so no writer (the API, the admin
-- CLI, an operator's UPDATE) can forget: every update of a security-relevant column, and every
-- delete, queues `NOTIFY backforge_security, '<user_id>'`, which PostgreSQL delivers when the
-- transaction commits (never if it rolls back). The payload only names whose entry to drop; the
-- cache always re-reads the values from this table.
CREATE OR REPLACE FUNCTION backforge_security_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('backforge_security', OLD.user_id::text);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS credentials_security_changed ON credentials;
CREATE TRIGGER credentials_security_changed
    AFTER UPDATE OF security_version, role, active, user_id OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION backforge_security_changed();
