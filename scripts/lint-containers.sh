#!/usr/bin/env bash
# Static checks of the container files: hadolint on every Dockerfile, shellcheck on the scripts, and `docker compose config -q` on the
# production file alone and with the development override (no Docker engine needed).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/tools.sh
source "${ROOT}/scripts/lib/tools.sh"
tools_up
cd "${ROOT}"

mapfile -t dockerfiles < <(git ls-files --cached --others --exclude-standard '*Dockerfile' | sort)
hadolint --failure-threshold style "${dockerfiles[@]}"
echo "hadolint: ${#dockerfiles[@]} Dockerfiles clean"

mapfile -t shells < <(git ls-files --cached --others --exclude-standard 'scripts/*.sh' 'deploy/*.sh' | sort)
shellcheck "${shells[@]}"
echo "shellcheck: ${#shells[@]} scripts clean"

# Secrets are generated on first run; config validation needs the files to exist.
scripts/compose-secrets.sh >/dev/null
# The Compose binary itself, so no Docker CLI is needed for this check.
docker-compose -f compose.yaml config -q
docker-compose -f compose.yaml -f compose.override.yaml config -q
echo "compose: compose.yaml and compose.override.yaml valid"
