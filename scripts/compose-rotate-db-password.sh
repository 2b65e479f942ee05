#!/usr/bin/env bash
# Rotate one service's PostgreSQL password in the running compose stack: set the new password on the
# role, rewrite the service's URL secret in place, recreate the containers that read it.
#   scripts/compose-rotate-db-password.sh auth|tasks|activity
set -Eeuo pipefail
# shellcheck source=scripts/lib/compose.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/compose.sh"

SERVICE="${1:?usage: compose-rotate-db-password.sh auth|tasks|activity}"
case "${SERVICE}" in
    auth | tasks) CONSUMERS=("${SERVICE}") ;;
    activity) CONSUMERS=(activity activity-worker) ;;
    *) echo "rotate: unknown service ${SERVICE}" >&2; exit 2 ;;
esac
SECRETS_DIR="${TASKMESH_SECRETS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/compose/secrets}"
SECRET="${SECRETS_DIR}/${SERVICE}_database_url"
[[ -s "${SECRET}" ]] || { echo "rotate: ${SECRET} missing (run scripts/compose-secrets.sh)" >&2; exit 1; }

password="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
docker compose exec -T postgres psql --quiet -v ON_ERROR_STOP=1 --username postgres --dbname postgres \
    --set=role="${SERVICE}" --set=password="${password}" <<'SQL'
ALTER ROLE :"role" PASSWORD :'password';
SQL
# In place (same inode): the bind-mounted secret in running containers sees the new content too.
url="$(<"${SECRET}")"
prefix="${url%%:*}://${SERVICE}:"
suffix="@${url#*@}"
printf '%s%s%s\n' "${prefix}" "${password}" "${suffix}" >"${SECRET}"
# Open connections keep working; new ones need the new password, so restart the readers now (every
# replica; `restart` keeps the scale, where `up` would reset it) and wait until they are healthy again.
docker compose restart "${CONSUMERS[@]}"
compose_wait_healthy 120 "${CONSUMERS[@]}"
echo "rotate: ${SERVICE}'s database password rotated; ${CONSUMERS[*]} restarted"
