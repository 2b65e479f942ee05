#!/usr/bin/env bash
# Build local stand-ins for the official base images (no registry here): a minimal Debian base from
# mmdebstrap (debootstrap's successor), then python, postgres, redis and nginx images built on it from
# Debian packages (deploy/standins/).
# Prints the variables that point compose and the Dockerfiles at them (eval it, or read deploy.md).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STANDINS="${ROOT}/deploy/standins"
TAG="taskmesh-standin"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "standins: $* (${SECONDS}s)" >&2; }

build_base() {
    local rootfs
    rootfs="$(mktemp -d /var/tmp/taskmesh-rootfs.XXXXXX)"
    trap 'rm -rf "${rootfs}"' RETURN
    # mmdebstrap: debootstrap's successor in Debian, same result, parallel downloads through apt.
    log "mmdebstrap bookworm (minbase)"
    # Like debian:bookworm-slim (python:3.11-slim's base): no manuals, docs or translations, now or
    # in later apt-get installs (mmdebstrap keeps these dpkg options in the image).
    mmdebstrap --quiet --variant=minbase --include=ca-certificates \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        bookworm "${rootfs}" "${MIRROR}"
    # An intercepting proxy's CA must be trusted inside builds too; TLS checks stay on.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "${rootfs}/usr/local/share/ca-certificates/"
        chroot "${rootfs}" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/cache/apt/*.bin "${rootfs}"/var/lib/apt/lists/*
    tar -C "${rootfs}" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        - "${TAG}/debian:bookworm" >/dev/null
    log "imported ${TAG}/debian:bookworm"
}

build_standin() {
    local name="$1" output
    if ! output="$(docker build --build-arg "BASE_IMAGE=${TAG}/debian:bookworm" \
        -t "${TAG}/${name}:latest" "${STANDINS}/${name}" 2>&1)"; then
        echo "${output}" >&2
        return 1
    fi
    log "built ${TAG}/${name}"
}

build_base
# Independent builds, mostly waiting on the Debian mirror: in parallel.
pids=()
for name in python postgres redis nginx; do
    build_standin "${name}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "${pid}"
done

cat <<VARS
export PYTHON_IMAGE=${TAG}/python:latest
export POSTGRES_IMAGE=${TAG}/postgres:latest
export REDIS_IMAGE=${TAG}/redis:latest
export NGINX_IMAGE=${TAG}/nginx:latest
VARS
