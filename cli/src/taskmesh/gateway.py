"""Render, validate and run the nginx gateway configuration from `gateway/` (standard library only).

The module also runs as a script so that a container build can render its config without installing
Taskmesh: `python gateway.py render --source gateway --listen 8080 > nginx.conf`.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("web", "auth", "tasks", "activity")
CONTAINER_UPSTREAMS: Mapping[str, Sequence[str]] = {
    "web": ["web:8001"],
    "auth": ["auth:8002"],
    "tasks": ["tasks:8003"],
    "activity": ["activity:8004"],
}
GATEWAY_DIR = Path(
    os.environ.get("TASKMESH_GATEWAY_DIR") or Path(__file__).resolve().parents[3] / "gateway"
)
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

# Idle upstream connections (cached per worker) are reused only while younger than the service's
# own idle timeout (uvicorn: 5 s; gunicorn gthread: 2 s), so a request never races the server
# closing it; a pool smaller than the client concurrency churns connections (measured at 64).
_KEEPALIVE = {"web": (32, "1s"), "auth": (128, "4s"), "tasks": (128, "4s"), "activity": (128, "4s")}
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
_LISTEN = re.compile(r"^((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?\d{1,5}$")
_RESOLVER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_SIZE = re.compile(r"^\d+[km]?$")
# nginx lets a request whose headers are too large reach error_page as 494, and plain HTTP on the
# TLS port as 497; the client sees a 400. Its own 501 (an unknown Transfer-Encoding) and 505
# (HTTP/2.0 or later in a request line) are the client's mistakes too: a 4xx, so that garbage from
# a scanner never counts as a server error.
_ALIASES = {494: 400, 497: 400, 501: 400, 505: 400}


class GatewayConfigError(Exception):
    """The gateway configuration is invalid (nginx's own explanation is the message)."""


@dataclass(frozen=True)
class Limits:
    """Per-client limits (request rates per direct peer address, connections, body size) and how
    long an upstream may take."""

    api_rate: int = 50  # requests per second
    api_burst: int = 100
    web_rate: int = 50  # requests per second
    web_burst: int = 100
    credential_rate: int = 10  # sign-in and sign-up attempts per minute
    credential_burst: int = 10
    connections_per_client: int = 100
    max_body_size: str = "1m"
    upstream_timeout: int = 30  # seconds to send the request to and to read from a service (504)


@dataclass(frozen=True)
class Tls:
    """A TLS listener; HSTS is sent on its responses."""

    listen: str | int
    certificate: Path
    certificate_key: Path


def find_nginx() -> str | None:
    """The nginx executable on PATH or in a usual system location, if any."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_CANDIDATES if os.access(path, os.X_OK)), None)


def render(
    *,
    upstreams: Mapping[str, Sequence[str]],
    listen: str | int,
    limits: Limits = Limits(),
    tls: Tls | None = None,
    resolver: str | None = None,
    source: Path = GATEWAY_DIR,
) -> str:
    """The nginx configuration for these upstreams ("host:port" per service) and listen address.

    With `resolver` (a DNS server, e.g. Docker's 127.0.0.11) each service is ONE name that nginx
    re-resolves every few seconds, so replicas started later get traffic too (no keepalive pool).
    """
    missing = set(SERVICES) - set(upstreams)
    unknown = set(upstreams) - set(SERVICES)
    if missing or unknown:
        raise ValueError(
            f"upstreams must name exactly {SERVICES}: missing {missing}, unknown {unknown}"
        )
    for name in SERVICES:
        _check_addresses(name, upstreams[name], single=resolver is not None)
    if resolver is None:
        block = (source / "upstream.conf.template").read_text()
        upstream_text = "\n\n".join(
            _upstream_block(block, name, upstreams[name]) for name in SERVICES
        )
    else:
        if not _RESOLVER.match(resolver):
            raise ValueError(f"not a resolver address: {resolver!r}")
        upstream_text = f"    resolver {resolver} valid=5s ipv6=off;\n    resolver_timeout 2s;"
    values = {
        "listen": _listen(listen),
        "tls": _tls_lines(tls) if tls else "",
        "upstreams": upstream_text,
        "error_pages": _error_page_lines(source),
        "error_locations": _error_locations(source),
        **{f"pass_{name}": _proxy_pass(name, upstreams[name][0], resolver) for name in SERVICES},
        **_limit_values(limits),
    }
    template = (source / "nginx.conf.template").read_text()
    return _fill(template, values)


def prepare(
    prefix: Path,
    *,
    upstreams: Mapping[str, Sequence[str]],
    listen: str | int,
    limits: Limits = Limits(),
    tls: Tls | None = None,
    resolver: str | None = None,
    nginx: str | None = None,
    source: Path = GATEWAY_DIR,
) -> list[str]:
    """Write `prefix/nginx.conf` and return the argv that runs nginx with it in the foreground."""
    executable = nginx or find_nginx()
    if executable is None:
        raise GatewayConfigError("nginx is not installed")
    prefix = prefix.resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    text = render(
        upstreams=upstreams,
        listen=listen,
        limits=limits,
        tls=tls,
        resolver=resolver,
        source=source,
    )
    config.write_text(text)
    return nginx_argv(executable, config)


def nginx_argv(nginx: str, config: Path) -> list[str]:
    """The argv running nginx with `config`; its directory is the prefix (pid, temp dirs)."""
    return [nginx, "-p", f"{config.parent}/", "-c", str(config), "-e", "stderr"]


def validate(config_path: Path, *, nginx: str | None = None) -> None:
    """Check a configuration with `nginx -t`; raise GatewayConfigError with nginx's output."""
    executable = nginx or find_nginx()
    if executable is None:
        raise GatewayConfigError("nginx is not installed")
    config_path = config_path.resolve()
    (config_path.parent / "tmp").mkdir(exist_ok=True)
    result = subprocess.run(
        [*nginx_argv(executable, config_path), "-t", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise GatewayConfigError((result.stderr + result.stdout).strip())


def _fill(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"the gateway template uses an unknown placeholder {name!r}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, template)


def _listen(listen: str | int) -> str:
    text = str(listen)
    if not _LISTEN.match(text):
        raise ValueError(f"not a listen address: {text!r} (want PORT or HOST:PORT)")
    return text


def _tls_lines(tls: Tls) -> str:
    indent = " " * 8
    return "".join(
        f"\n{indent}{line}"
        for line in [
            f"listen {_listen(tls.listen)} ssl default_server;",
            f"ssl_certificate {_quoted(str(tls.certificate))};",
            f"ssl_certificate_key {_quoted(str(tls.certificate_key))};",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_session_cache shared:tls:10m;",
        ]
    )


def _check_addresses(service: str, addresses: Sequence[str], *, single: bool) -> None:
    if not addresses:
        raise ValueError(f"service {service!r} needs at least one upstream address")
    if single and len(addresses) > 1:
        raise ValueError(f"with a resolver, service {service!r} takes one name, not {addresses}")
    for address in addresses:
        if not _ADDRESS.match(address):
            raise ValueError(f"not a host:port upstream address for {service!r}: {address!r}")


def _upstream_block(block: str, service: str, addresses: Sequence[str]) -> str:
    """One service's pool: a failing replica is skipped for a second, but never all of them."""
    servers = [f"        server {address} max_fails=1 fail_timeout=1s;" for address in addresses]
    # A replica that refused connections while it restarted stays marked down for a while after it
    # is ready again; restarting the next one then would leave no live upstream (502). So the same
    # replicas follow as backups that are never marked down: nginx turns to them only when every
    # primary is marked, and a refused connection there costs just a retry on the next one.
    if len(addresses) > 1:
        servers += [f"        server {address} backup max_fails=0;" for address in addresses]
    connections, idle = _KEEPALIVE[service]
    values = {
        "service": service,
        "servers": "\n".join(servers),
        "keepalive": str(connections),
        "keepalive_timeout": idle,
    }
    return _fill(block, values).rstrip("\n")


def _proxy_pass(service: str, address: str, resolver: str | None) -> str:
    """A location's proxy directives: strip the prefix, pass to the pool or the resolved name."""
    if resolver is None:
        return f"proxy_pass http://gw_{service}{'' if service == 'web' else '/'};"
    lines = [f"set $gw_upstream {address};"]
    if service != "web":
        # A proxy_pass with a variable does not replace the location prefix itself.
        lines.append(f"rewrite ^/api/{service}/(.*)$ /$1 break;")
    lines.append("proxy_pass http://$gw_upstream;")
    return "\n            ".join(lines)


def _limit_values(limits: Limits) -> dict[str, str]:
    if not _SIZE.match(limits.max_body_size):
        raise ValueError(f"not an nginx size: {limits.max_body_size!r}")
    numbers = {
        "api_rate": limits.api_rate,
        "api_burst": limits.api_burst,
        "web_rate": limits.web_rate,
        "web_burst": limits.web_burst,
        "credential_rate": limits.credential_rate,
        "credential_burst": limits.credential_burst,
        "connections_per_client": limits.connections_per_client,
        "upstream_timeout": limits.upstream_timeout,
        "api_retry_after": math.ceil(1 / limits.api_rate),
        "credential_retry_after": math.ceil(60 / limits.credential_rate),
    }
    if any(value < 1 for value in numbers.values()):
        raise ValueError(f"limits must be positive: {limits}")
    return {
        **{key: str(value) for key, value in numbers.items()},
        "max_body_size": limits.max_body_size,
    }


def _problems(source: Path) -> dict[int, dict[str, object]]:
    """The gateway's own problem documents, by status, from `errors/<status>.json`."""
    problems = {}
    for path in sorted((source / "errors").glob("*.json")):
        document = json.loads(path.read_text())
        if document.get("status") != int(path.stem):
            raise ValueError(f"{path} must carry status {path.stem}")
        problems[int(path.stem)] = document
    return problems


def _error_page_lines(source: Path) -> str:
    lines = []
    statuses = _problems(source)
    for status in statuses:
        lines.append(f"        error_page {status} /_gateway/$gw_error_kind/{status};")
    for alias, status in _ALIASES.items():
        if status in statuses:
            lines.append(f"        error_page {alias} ={status} /_gateway/$gw_error_kind/{status};")
    return "\n".join(lines)


def _error_locations(source: Path) -> str:
    page = (source / "errors" / "page.html").read_text()
    blocks = []
    for status, problem in _problems(source).items():
        body = json.dumps(problem, separators=(",", ":"))
        fields = {
            key: html.escape(str(problem.get(key, ""))) for key in ("status", "title", "detail")
        }
        bodies = {
            "json": ("application/problem+json", body),
            "html": ('"text/html; charset=utf-8"', _fill(page, fields)),
        }
        for kind, (content_type, text) in bodies.items():
            blocks.append(
                f"        location = /_gateway/{kind}/{status} {{\n"
                "            internal;\n"
                f"            default_type {content_type};\n"
                f"            return {status} {_quoted(text)};\n"
                "        }"
            )
    return "\n\n".join(blocks)


def _quoted(text: str) -> str:
    """`text` as a single-quoted nginx string; `$` is refused because nginx would expand it."""
    if "$" in text:
        raise ValueError("gateway error bodies and paths must not contain '$'")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `render` writes a configuration (container upstreams by default)."""
    parser = argparse.ArgumentParser(prog="taskmesh-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render_command = commands.add_parser("render", help="write the nginx configuration")
    render_command.add_argument("--source", type=Path, default=GATEWAY_DIR)
    render_command.add_argument("--listen", default="8080")
    render_command.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="replace a service's upstream addresses (repeat for several replicas)",
    )
    render_command.add_argument(
        "--resolver", help="DNS server for re-resolving service names, e.g. 127.0.0.11 (Docker)"
    )
    render_command.add_argument("--output", type=Path, help="write here instead of stdout")
    arguments = parser.parse_args(argv)
    upstreams: dict[str, list[str]] = {}
    for item in arguments.upstream:
        service, _, address = item.partition("=")
        upstreams.setdefault(service, []).append(address)
    try:
        text = render(
            upstreams={**CONTAINER_UPSTREAMS, **upstreams},
            listen=arguments.listen,
            resolver=arguments.resolver,
            source=arguments.source,
        )
    except ValueError as error:
        parser.error(str(error))
    if arguments.output is None:
        sys.stdout.write(text)
    else:
        arguments.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
