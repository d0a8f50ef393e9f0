-- The least-privilege role dialq's processes connect as (all but the `migrate` job): it reads and
-- writes rows of the tables the schema's owner makes, and can create, alter or drop nothing.
-- Run by the owner (the role that runs `dialq db upgrade`) in the dialq database, with the app
-- role's password in the setting dialq.app_password (deploy/postgres-init.sh sets it).
-- Idempotent: run again to reset the password or to repair grants on an existing database.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dialq_app') THEN
        CREATE ROLE dialq_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
    EXECUTE format('ALTER ROLE dialq_app WITH LOGIN PASSWORD %L',
                   current_setting('dialq.app_password'));
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dialq_app', current_database());
END
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15 made this the default).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO dialq_app;

-- Rows only: the tables and sequences there now, and those later migrations make.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO dialq_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO dialq_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dialq_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO dialq_app;
