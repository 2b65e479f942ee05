#!/usr/bin/env bash
# Generate the compose stack's secrets (deploy/compose/secrets/, or $TASKMESH_SECRETS_DIR) once; existing files are kept, so it is
# safe to run before every `docker compose up`. Delete a file and rerun to rotate it (see docs/deploy.md).
set -Eeuo pipefail

DIR="${TASKMESH_SECRETS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/compose/secrets}"
umask 077
mkdir -p "${DIR}"
chmod 0700 "${DIR}"

random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# write NAME VALUE: only when NAME does not exist yet. Containers run as various non-root users and compose
# bind-mounts these files as they are, so they are world-readable inside a directory only the owner can enter.
write() {
    local path="${DIR}/$1"
    [[ -e "${path}" ]] && return 0
    printf '%s\n' "$2" >"${path}"
    chmod 0644 "${path}"
    echo "secrets: created $1"
}

write postgres_password "$(random)"
for service in auth tasks activity; do
    write "${service}_database_url" "postgresql://${service}:$(random)@postgres:5432/taskmesh_${service}"
done
write redis_password "$(random)"
redis_password="$(<"${DIR}/redis_password")"
write redis_url "redis://:${redis_password}@redis:6379/0"
# Redis reads its password from a config file; regenerated from redis_password each time so they agree.
printf 'requirepass %s\n' "${redis_password}" >"${DIR}/redis.conf"
chmod 0644 "${DIR}/redis.conf"
write auth_key_encryption_secret "$(random)"
write web_secret_key "$(random)"

# A self-signed certificate for the gateway's HTTPS port (localhost and 127.0.0.1; ~2 years).
if [[ ! -e "${DIR}/gateway_tls.crt" || ! -e "${DIR}/gateway_tls.key" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=${TASKMESH_TLS_NAME:-localhost}" \
        -addext "subjectAltName=DNS:${TASKMESH_TLS_NAME:-localhost},DNS:localhost,IP:127.0.0.1" \
        -keyout "${DIR}/gateway_tls.key" -out "${DIR}/gateway_tls.crt" 2>/dev/null
    chmod 0644 "${DIR}/gateway_tls.key" "${DIR}/gateway_tls.crt"
    echo "secrets: created gateway_tls.crt, gateway_tls.key (self-signed)"
fi
