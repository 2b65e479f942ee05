#!/usr/bin/env bash
# First start of the postgres container: one role and one database per service, each role owning only its
# database. Names and passwords come from the services' own URL secrets, so the two always agree.
set -Eeuo pipefail

for service in auth tasks activity; do
    url="$(</run/secrets/${service}_database_url)"
    # postgresql://USER:PASSWORD@HOST:PORT/DATABASE (the generator uses hex passwords: nothing to unescape)
    rest="${url#postgresql://}"
    user="${rest%%:*}"
    rest="${rest#*:}"
    password="${rest%%@*}"
    database="${rest##*/}"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --set=user="${user}" --set=password="${password}" --set=database="${database}" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"user";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
    echo "initdb: database ${database} owned by ${user}"
done
