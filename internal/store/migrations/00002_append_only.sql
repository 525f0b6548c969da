-- The trail's events and health rounds are append-only: once written, a row
-- is never changed or removed, whoever asks (short of a superuser turning
-- triggers off). Plans and stages are each run's current summary and are
-- updated as the run goes on. Grants for a worker role that can only do
-- this are in deployments/postgres/roles.sql (docs/AUDIT.md).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION stagecraft_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stagecraft audit trail: % on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER deployment_events_append_only BEFORE UPDATE OR DELETE ON deployment_events
    FOR EACH ROW EXECUTE FUNCTION stagecraft_append_only();
CREATE TRIGGER deployment_events_no_truncate BEFORE TRUNCATE ON deployment_events
    FOR EACH STATEMENT EXECUTE FUNCTION stagecraft_append_only();
CREATE TRIGGER check_rounds_append_only BEFORE UPDATE OR DELETE ON check_rounds
    FOR EACH ROW EXECUTE FUNCTION stagecraft_append_only();
CREATE TRIGGER check_rounds_no_truncate BEFORE TRUNCATE ON check_rounds
    FOR EACH STATEMENT EXECUTE FUNCTION stagecraft_append_only();

-- +goose Down
DROP TRIGGER check_rounds_no_truncate ON check_rounds;
DROP TRIGGER check_rounds_append_only ON check_rounds;
DROP TRIGGER deployment_events_no_truncate ON deployment_events;
DROP TRIGGER deployment_events_append_only ON deployment_events;
DROP FUNCTION stagecraft_append_only();
