# shellcheck shell=bash
# A throwaway Docker engine: its own data root, socket and pidfile, so no state survives between runs.
# Source this file, then call engine_up; engine_down runs from the caller's EXIT trap.

ENGINE_DIR=""

engine_install() {
    local missing=()
    { command -v dockerd && command -v docker; } >/dev/null || missing+=(docker.io containerd runc)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    if ((${#missing[@]})); then
        echo "engine: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

engine_up() {
    engine_install
    ENGINE_DIR="$(mktemp -d /var/tmp/taskmesh-engine.XXXXXX)"
    export DOCKER_HOST="unix://${ENGINE_DIR}/docker.sock"
    # Images and containers live in memory: the run writes a few GB of small files that would take
    # longer to delete from disk than to build, and nothing of it is meant to outlive the run.
    mkdir "${ENGINE_DIR}/data"
    mount -t tmpfs -o "size=${TASKMESH_ENGINE_TMPFS_SIZE:-12g},mode=0710" taskmesh-engine "${ENGINE_DIR}/data"
    echo "engine: starting dockerd (data root ${ENGINE_DIR}/data)"
    dockerd \
        --data-root "${ENGINE_DIR}/data" \
        --exec-root "${ENGINE_DIR}/exec" \
        --pidfile "${ENGINE_DIR}/dockerd.pid" \
        --host "${DOCKER_HOST}" \
        --storage-driver overlay2 \
        --log-level warn \
        >"${ENGINE_DIR}/dockerd.log" 2>&1 &
    local deadline=$((SECONDS + 60))
    until docker version >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            echo "engine: dockerd did not come up" >&2
            tail -n 40 "${ENGINE_DIR}/dockerd.log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "engine: up ($(docker version --format '{{.Server.Version}}'))"
}

engine_down() {
    [[ -n "${ENGINE_DIR}" && -d "${ENGINE_DIR}" ]] || return 0
    local pidfile="${ENGINE_DIR}/dockerd.pid" pid
    if [[ -s "${pidfile}" ]]; then
        pid="$(cat "${pidfile}")"
        echo "engine: stopping dockerd (pid ${pid})"
        kill -TERM "${pid}" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -KILL "${pid}" 2>/dev/null; then
            echo "engine: dockerd did not stop within 30 s; killed" >&2
        fi
    fi
    # Mounts left by a killed engine, then the data tmpfs itself (deepest first).
    grep -o "${ENGINE_DIR}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "${ENGINE_DIR}"
    ENGINE_DIR=""
    unset DOCKER_HOST
}
