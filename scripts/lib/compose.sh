# shellcheck shell=bash
# Helpers over `docker compose` (which honours COMPOSE_FILE and COMPOSE_PROJECT_NAME).

# compose_wait_healthy TIMEOUT SERVICE...: until every container of these services is running and, when it
# has a healthcheck, healthy. Unlike `start --wait`, this touches nothing else (no dependencies re-run).
compose_wait_healthy() {
    local timeout="$1" deadline id status
    shift
    deadline=$((SECONDS + timeout))
    while true; do
        local pending=0
        for id in $(docker compose ps --all --quiet "$@"); do
            status="$(docker inspect --format '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "${id}")"
            [[ "${status}" == "running/healthy" || "${status}" == "running/none" ]] || pending=$((pending + 1))
        done
        ((pending == 0)) && return 0
        if ((SECONDS > deadline)); then
            echo "compose: $* not healthy after ${timeout}s" >&2
            docker compose ps --all "$@" >&2
            return 1
        fi
        sleep 1
    done
}
