#!/usr/bin/env bash
# Runs once, when the postgres container initializes an empty data
# directory (docker-entrypoint-initdb.d): creates Stagecraft's audit
# database and its owner beside Temporal's databases, which auto-setup
# creates itself. The worker applies the audit store's migrations at start.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v db="${STAGECRAFT_DB:-stagecraft}" -v user="${STAGECRAFT_DB_USER:-stagecraft}" \
  -v password="${STAGECRAFT_DB_PASSWORD:?set STAGECRAFT_DB_PASSWORD}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') \gexec
SQL
