"""Rendering the one template for the embedded run and for containers, checked by `nginx -t`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from taskmesh import gateway

EMBEDDED = {
    "web": ["127.0.0.1:8001"],
    "auth": ["127.0.0.1:8002"],
    "tasks": ["127.0.0.1:8003", "127.0.0.1:8013"],
    "activity": ["127.0.0.1:8004"],
}


def test_embedded_rendering_is_valid_nginx(nginx: str, tmp_path: Path) -> None:
    argv = gateway.prepare(
        tmp_path / "gw", upstreams=EMBEDDED, listen="127.0.0.1:8000", nginx=nginx
    )

    config = tmp_path / "gw" / "nginx.conf"
    gateway.validate(config, nginx=nginx)
    assert argv == [nginx, "-p", f"{config.parent}/", "-c", str(config), "-e", "stderr"]
    text = config.read_text()
    assert "listen 127.0.0.1:8000 default_server;" in text
    assert "server 127.0.0.1:8003 max_fails=1 fail_timeout=1s;" in text
    assert "server 127.0.0.1:8013 max_fails=1 fail_timeout=1s;" in text
    # The same replicas as never-marked backups: a rolling restart never leaves none.
    assert "server 127.0.0.1:8003 backup max_fails=0;" in text
    assert "server 127.0.0.1:8013 backup max_fails=0;" in text
    assert "server 127.0.0.1:8001 backup" not in text  # one replica: nothing to fall back on
    assert "proxy_read_timeout 30s;" in text
    assert "daemon off;" in text
    assert "{{" not in text


def test_container_rendering_names_services(nginx: str, tmp_path: Path) -> None:
    text = gateway.render(upstreams=gateway.CONTAINER_UPSTREAMS, listen=8080)

    assert "listen 8080 default_server;" in text
    for service, (address,) in gateway.CONTAINER_UPSTREAMS.items():
        assert f"server {address} max_fails=1" in text, service
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    _validate_with_service_names(nginx, config)


def _validate_with_service_names(nginx: str, config: Path) -> None:
    """Run `nginx -t` where the service names resolve: a private /etc/hosts in a mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is needed to resolve container service names")
    hosts = config.with_name("hosts")
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 web auth tasks activity\n")
    (config.parent / "tmp").mkdir(exist_ok=True)
    namespace = [unshare, "--mount"] if os.geteuid() == 0 else [unshare, "-rm"]
    check = " ".join([*gateway.nginx_argv(nginx, config), "-t", "-q"])
    result = subprocess.run(
        [*namespace, "sh", "-c", f"mount --bind {hosts} /etc/hosts && {check}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "mount" in result.stderr and result.returncode != 0 and "nginx" not in result.stderr:
        pytest.skip(f"cannot make a private /etc/hosts here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


def test_cli_renders_container_config_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    status = gateway.main(
        [
            "render",
            "--listen",
            "80",
            "--upstream",
            "tasks=tasks-1:8003",
            "--upstream",
            "tasks=tasks-2:8003",
        ]
    )

    text = capsys.readouterr().out
    assert status == 0
    assert "listen 80 default_server;" in text
    assert "server tasks-1:8003 max_fails=1" in text
    assert "server tasks-2:8003 max_fails=1" in text
    assert "server web:8001 max_fails=1" in text


@pytest.mark.parametrize(
    ("upstreams", "listen", "message"),
    [
        ({k: v for k, v in EMBEDDED.items() if k != "web"}, "8000", "missing"),
        ({**EMBEDDED, "mail": ["127.0.0.1:25"]}, "8000", "unknown"),
        ({**EMBEDDED, "tasks": []}, "8000", "at least one"),
        ({**EMBEDDED, "tasks": ["127.0.0.1:8003; include /etc/passwd"]}, "8000", "host:port"),
        ({**EMBEDDED, "tasks": ["http://127.0.0.1:8003"]}, "8000", "host:port"),
        (EMBEDDED, "8000 ssl; evil", "listen address"),
    ],
)
def test_render_refuses_bad_input(
    upstreams: dict[str, list[str]], listen: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gateway.render(upstreams=upstreams, listen=listen)


def test_limits_are_rendered_with_retry_after(nginx: str, tmp_path: Path) -> None:
    limits = gateway.Limits(api_rate=7, credential_rate=4, max_body_size="64k", upstream_timeout=3)

    text = gateway.render(upstreams=EMBEDDED, listen=8000, limits=limits)

    assert "zone=api:10m rate=7r/s;" in text
    assert "proxy_read_timeout 3s;" in text
    assert "proxy_send_timeout 3s;" in text
    assert "zone=credentials:10m rate=4r/m;" in text
    assert "client_max_body_size 64k;" in text
    assert '"" 1;' in text  # API Retry-After: ceil(1/7 s)
    assert "default 15;" in text  # credentials Retry-After: 60/4 s
    with pytest.raises(ValueError, match="positive"):
        gateway.render(upstreams=EMBEDDED, listen=8000, limits=gateway.Limits(api_burst=0))


def test_every_problem_document_becomes_an_error_page(tmp_path: Path) -> None:
    text = gateway.render(upstreams=EMBEDDED, listen=8000)

    for path in sorted((gateway.GATEWAY_DIR / "errors").glob("*.json")):
        problem = json.loads(path.read_text())
        assert problem["status"] == int(path.stem)
        assert f"error_page {path.stem} /_gateway/$gw_error_kind/{path.stem};" in text
        assert f"location = /_gateway/json/{path.stem}" in text
        assert f"location = /_gateway/html/{path.stem}" in text
    assert "error_page 494 =400 /_gateway/$gw_error_kind/400;" in text


def test_error_bodies_must_not_contain_nginx_variables(tmp_path: Path) -> None:
    source = tmp_path / "gateway"
    shutil.copytree(gateway.GATEWAY_DIR, source, ignore=shutil.ignore_patterns("tests"))
    (source / "errors" / "418.json").write_text(
        json.dumps({"type": "about:blank", "title": "Teapot $host", "status": 418})
    )

    with pytest.raises(ValueError, match=r"'\$'"):
        gateway.render(upstreams=EMBEDDED, listen=8000, source=source)


def test_validate_reports_nginx_errors(nginx: str, tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\nhttp { server { listen nonsense; } }\n")

    with pytest.raises(gateway.GatewayConfigError, match="listen"):
        gateway.validate(config, nginx=nginx)


def test_tls_rendering_is_valid_nginx(
    nginx: str, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    tls = gateway.Tls(listen="127.0.0.1:8443", certificate=cert, certificate_key=key)

    gateway.prepare(tmp_path / "gw", upstreams=EMBEDDED, listen=8000, tls=tls, nginx=nginx)

    gateway.validate(tmp_path / "gw" / "nginx.conf", nginx=nginx)
    assert (
        "listen 127.0.0.1:8443 ssl default_server;" in (tmp_path / "gw" / "nginx.conf").read_text()
    )


def test_find_nginx_finds_the_installed_binary(nginx: str) -> None:
    found = gateway.find_nginx()

    assert found is not None
    assert Path(found).resolve() == Path(nginx).resolve()


def test_resolver_mode_reresolves_one_name_per_service(nginx: str, tmp_path: Path) -> None:
    output = tmp_path / "gw" / "nginx.conf"
    output.parent.mkdir()

    status = gateway.main(["render", "--resolver", "127.0.0.11", "--output", str(output)])

    text = output.read_text()
    assert status == 0
    assert "resolver 127.0.0.11 valid=5s ipv6=off;" in text
    assert "upstream gw_" not in text
    assert "set $gw_upstream tasks:8003;" in text
    assert "rewrite ^/api/tasks/(.*)$ /$1 break;" in text
    gateway.validate(output, nginx=nginx)  # names are resolved per request, not at start
    with pytest.raises(ValueError, match="one name"):
        gateway.render(upstreams=EMBEDDED, listen=8000, resolver="127.0.0.11")
    with pytest.raises(ValueError, match="resolver"):
        gateway.render(upstreams=gateway.CONTAINER_UPSTREAMS, listen=8000, resolver="1.2.3.4; evil")
