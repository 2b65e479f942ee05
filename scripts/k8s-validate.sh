#!/usr/bin/env bash
# Render every kustomize overlay with `kubectl kustomize` and validate each resource against the
# Kubernetes schemas (kubernetes-validate --strict: unknown fields are errors). Needs no cluster.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/tools.sh
source "${ROOT}/scripts/lib/tools.sh"
tools_up

OUT="$(mktemp -d)"
trap 'rm -rf "${OUT}"' EXIT

# The validator must reject what it does not know, or a pass would mean nothing.
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: probe}\nspec: {portz: []}\n' >"${OUT}/bogus.yaml"
if kubernetes-validate --strict --quiet "${OUT}/bogus.yaml" >/dev/null 2>&1; then
    echo "k8s: kubernetes-validate accepted an unknown field; refusing to trust it" >&2
    exit 1
fi

status=0
for overlay in "${ROOT}"/deploy/k8s/overlays/*/; do
    name="$(basename "${overlay}")"
    kubectl kustomize "${overlay}" >"${OUT}/${name}.yaml"
    count="$(grep -c '^kind:' "${OUT}/${name}.yaml")"
    if kubernetes-validate --strict --quiet --no-warn "${OUT}/${name}.yaml"; then
        echo "k8s: overlay ${name}: ${count} resources valid"
    else
        echo "k8s: overlay ${name}: INVALID" >&2
        status=1
    fi
done
exit "${status}"
