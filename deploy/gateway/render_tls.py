"""Print the compose gateway configuration: HTTP on 8080, HTTPS on 8443, names re-resolved by DNS.

Run in the gateway image's build stage from the repository layout (standard library only):
    python deploy/gateway/render_tls.py 127.0.0.11 > taskmesh-dns-tls.conf
The certificate and key are compose secrets (scripts/compose-secrets.sh makes a self-signed pair).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli" / "src"))

from taskmesh.gateway import CONTAINER_UPSTREAMS, Tls, render

SECRETS = Path("/run/secrets")


def main() -> int:
    """Render with the resolver given as the only argument."""
    (resolver,) = sys.argv[1:]
    tls = Tls(
        listen=8443,
        certificate=SECRETS / "gateway_tls.crt",
        certificate_key=SECRETS / "gateway_tls.key",
    )
    sys.stdout.write(render(upstreams=CONTAINER_UPSTREAMS, listen=8080, tls=tls, resolver=resolver))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
