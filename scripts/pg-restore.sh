#!/usr/bin/env bash
# Restore the Taskmesh databases of the running compose stack from a pg-backup.sh directory. The
# services that write to them are stopped first (no writes race the restore) and started again after;
# each database is replaced in one transaction, so a failed restore leaves it as it was.
#   scripts/pg-restore.sh DIR
set -Eeuo pipefail
# shellcheck source=scripts/lib/compose.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/compose.sh"

DIR="${1:?usage: pg-restore.sh DIR (made by pg-backup.sh)}"
DATABASES=(taskmesh_auth taskmesh_tasks taskmesh_activity)
WRITERS=(gateway web auth tasks activity activity-worker)

for database in "${DATABASES[@]}"; do
    [[ -s "${DIR}/${database}.dump" ]] || { echo "restore: ${DIR}/${database}.dump missing" >&2; exit 1; }
done

echo "restore: stopping ${WRITERS[*]}"
docker compose stop "${WRITERS[@]}"
for database in "${DATABASES[@]}"; do
    docker compose exec -T postgres pg_restore --username postgres --dbname "${database}" \
        --clean --if-exists --single-transaction --exit-on-error \
        <"${DIR}/${database}.dump"
    echo "restore: ${database} restored"
done
echo "restore: starting ${WRITERS[*]}"
docker compose start "${WRITERS[@]}"
compose_wait_healthy 180 "${WRITERS[@]}"
