#!/usr/bin/env bash
# The official postgres image's first-start contract: initdb with POSTGRES_PASSWORD[_FILE], POSTGRES_USER and
# POSTGRES_DB, then /docker-entrypoint-initdb.d/*.sh and *.sql against a socket-only server, then postgres.
set -Eeuo pipefail

if [[ "${1:-}" != "postgres" ]]; then
    exec "$@"
fi

if [[ "$(id -u)" == "0" ]]; then
    chown postgres:postgres "${PGDATA}" /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    POSTGRES_PASSWORD="$(<"${POSTGRES_PASSWORD_FILE}")"
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE must be set}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-${POSTGRES_USER}}"

if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD}" >"${pwfile}"
    initdb --username="${POSTGRES_USER}" --pwfile="${pwfile}" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "${pwfile}"
    printf 'host all all all scram-sha-256\n' >>"${PGDATA}/pg_hba.conf"

    pg_ctl --silent --wait --options "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --dbname postgres)
    if [[ "${POSTGRES_DB}" != "postgres" ]]; then
        "${psql[@]}" --quiet --command "CREATE DATABASE \"${POSTGRES_DB}\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "${f}" in
            *.sh)
                echo "entrypoint: running ${f}"
                # shellcheck source=/dev/null
                if [[ -x "${f}" ]]; then "${f}"; else . "${f}"; fi
                ;;
            *.sql) echo "entrypoint: running ${f}"; "${psql[@]}" --dbname "${POSTGRES_DB}" -f "${f}" ;;
            *) ;;
        esac
    done
    pg_ctl --silent --wait --mode=fast stop
    echo "entrypoint: database initialised"
fi

shift
exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
