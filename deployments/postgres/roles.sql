-- Least-privilege roles for Stagecraft's audit store. Run as a superuser (or
-- a role with CREATEROLE) in the audit database, after `worker migrate` has
-- created the tables as the owner role:
--
--   psql "$ADMIN_URL" -v worker_password=... -v reader_password=... -f deployments/postgres/roles.sql
--
-- stagecraft_worker: what a running worker needs (start it with
--   --skip-migrations): insert events and health rounds (never change or
--   remove them), insert and update each run's plan and stage summaries.
-- stagecraft_reader: what `starter history` and `starter list --source store`
--   need: read only.
-- The tables' owner (the role `worker migrate` ran as) keeps the right to
-- migrate; even it cannot change or remove events and rounds: triggers
-- (migration 00002) refuse UPDATE, DELETE and TRUNCATE there.

SELECT format('CREATE ROLE stagecraft_worker LOGIN PASSWORD %L', :'worker_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stagecraft_worker') \gexec
SELECT format('CREATE ROLE stagecraft_reader LOGIN PASSWORD %L', :'reader_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stagecraft_reader') \gexec

REVOKE ALL ON deployment_plans, deployment_stages, deployment_events, check_rounds FROM stagecraft_worker, stagecraft_reader;
GRANT USAGE ON SCHEMA public TO stagecraft_worker, stagecraft_reader;
GRANT SELECT, INSERT ON deployment_events, check_rounds TO stagecraft_worker;
GRANT SELECT, INSERT, UPDATE ON deployment_plans, deployment_stages TO stagecraft_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO stagecraft_worker;
GRANT SELECT ON deployment_plans, deployment_stages, deployment_events, check_rounds TO stagecraft_reader;
