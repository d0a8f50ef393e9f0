#!/bin/sh
# Run by the postgres image on its first start (/docker-entrypoint-initdb.d), as POSTGRES_USER,
# the owner of the dialq database: makes the app role of deploy/postgres-init.sql (mounted at
# /etc/dialq; POSTGRES_INIT_SQL names another copy). The password goes in as a psql variable,
# quoted by psql, and is never printed.
set -eu
: "${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 -v app_password="$POSTGRES_APP_PASSWORD" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
SELECT set_config('dialq.app_password', :'app_password', false) AS app_password_set \\gset
\\i ${POSTGRES_INIT_SQL:-/etc/dialq/postgres-init.sql}
SQL
