#!/bin/sh
# db-roles.sh — the Compose stack's DBA step (service `db-roles`, in the postgres image, as the
# superuser whose password is WASL_PG_PASSWORD): Wasl's roles from proto/roles.sql, each with
# the password `secrets` made for it, and the database `wasl` owned by `wasl`. Idempotent.
set -eu
export PGHOST=postgres PGUSER=postgres PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -f /deploy/roles.sql
for file in /secrets/pg/*; do
    role=$(basename "$file")
    # Through stdin (printf is the shell's builtin): never on a command line. The passwords are
    # hex and the role names fixed, so nothing needs quoting beyond this.
    printf 'ALTER ROLE "%s" PASSWORD '"'"'%s'"'"';\n' "$role" "$(cat "$file")" |
        psql -X -q -v ON_ERROR_STOP=1
done
if [ "$(psql -X -tA -c "SELECT 1 FROM pg_database WHERE datname = 'wasl'")" != 1 ]; then
    psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE wasl OWNER wasl"
fi
echo "db-roles: ready"
