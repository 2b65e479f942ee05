#!/usr/bin/env bash
# Back up every Taskmesh database of the running compose stack: one pg_dump custom-format archive per
# database in DIR (default .taskmesh/backups/<UTC time>, git-ignored). Online and consistent per
# database (pg_dump reads one snapshot). Honours COMPOSE_FILE / COMPOSE_PROJECT_NAME like compose.
#   scripts/pg-backup.sh [DIR]
set -Eeuo pipefail

DATABASES=(taskmesh_auth taskmesh_tasks taskmesh_activity)
DIR="${1:-.taskmesh/backups/$(date -u +%Y%m%dT%H%M%SZ)}"
umask 077
mkdir -p "${DIR}"

for database in "${DATABASES[@]}"; do
    docker compose exec -T postgres pg_dump --username postgres --format custom --compress 6 \
        --dbname "${database}" >"${DIR}/${database}.dump"
    # An archive pg_restore cannot list is not a backup.
    docker compose exec -T postgres pg_restore --list <"${DIR}/${database}.dump" >/dev/null
    echo "backup: ${database} -> ${DIR}/${database}.dump ($(wc -c <"${DIR}/${database}.dump") bytes)"
done
