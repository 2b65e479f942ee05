"""`taskmesh up` and `run_system` on a workspace of small stand-in services."""

from __future__ import annotations

import functools
import io
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
from taskmesh.admin import read_state, service_context
from taskmesh.manifest import ManifestError, discover_services
from taskmesh.printer import LogPrinter
from taskmesh.processes import free_port, wait_until
from taskmesh.system import StartupError, prepare_data_dir, run_system

FAKE = Path(__file__).with_name("fake_service")


WORKER = """["python", "-c", "import time; print('working', flush=True); time.sleep(3600)"]"""


def _write_workspace(
    root: Path,
    *,
    alpha_port: int,
    beta_port: int,
    alpha_command: str | None = None,
    worker_command: str = WORKER,
) -> Path:
    serve, migrate = FAKE / "serve.py", FAKE / "migrate.py"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "fake"\nversion = "0"\n')
    alpha = alpha_command or f'["python", "{serve}", "{{port}}"]'
    manifests = {
        "alpha": f"""
[tool.taskmesh]
order = 10
database = "fake_alpha"
migrate = ["python", "{migrate}"]

[tool.taskmesh.env]
FAKE_DATABASE_URL = "{{database_url}}"
FAKE_REDIS_URL = "{{redis_url}}"
FAKE_SECRET = "{{secret[alpha]}}"
FAKE_DATA_DIR = "{{data_dir}}"
FAKE_PUBLIC_URL = "{{public_url}}"

[[tool.taskmesh.processes]]
name = "alpha"
port = {alpha_port}
command = {alpha}
ready = "/readyz"
""",
        "beta": f"""
[tool.taskmesh]
order = 20

[tool.taskmesh.env]
FAKE_ALPHA_URL = "{{url[alpha]}}"

[[tool.taskmesh.processes]]
name = "beta"
port = {beta_port}
command = ["python", "{serve}", "{{port}}"]
ready = "/readyz"

[[tool.taskmesh.processes]]
name = "beta-worker"
command = {worker_command}
""",
        "plain": "[project]\nname = 'not-run'\n",
    }
    for name, text in manifests.items():
        (root / "services" / name).mkdir(parents=True)
        (root / "services" / name / "pyproject.toml").write_text(text)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return _write_workspace(tmp_path / "ws", alpha_port=free_port(), beta_port=free_port())


def test_manifests_are_discovered_in_start_order(workspace: Path) -> None:
    services = discover_services(workspace)
    assert [service.name for service in services] == ["alpha", "beta"]
    assert [p.name for p in services[1].processes] == ["beta", "beta-worker"]


def test_duplicate_process_names_are_refused(workspace: Path) -> None:
    manifest = workspace / "services" / "beta" / "pyproject.toml"
    manifest.write_text(manifest.read_text().replace('name = "beta-worker"', 'name = "alpha"'))
    with pytest.raises(ManifestError, match="process names used twice: alpha"):
        discover_services(workspace)


@pytest.mark.slow
def test_system_starts_in_order_with_placeholders_filled(workspace: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with (
        log.open("w") as stream,
        run_system(
            tmp_path / "data",
            root=workspace,
            ports="free",
            replicas={"beta": 2},
            gateway=False,
            printer=LogPrinter(stream),
            durable=False,
        ) as system,
    ):
        assert set(system.urls) == {"alpha", "beta"}
        assert [p.name for p in system.processes] == ["alpha", "beta.1", "beta.2", "beta-worker"]
        env = httpx.get(system.urls["alpha"] + "/env").json()
        assert env["FAKE_DATABASE_URL"] == system.backing.database_url("fake_alpha")
        assert env["FAKE_REDIS_URL"] == system.backing.redis_url_for(0)
        assert len(env["FAKE_SECRET"]) > 40
        assert env["FAKE_DATA_DIR"] == str(tmp_path / "data" / "services" / "alpha")
        assert env["TASKMESH_ENV"] == "development"
        assert httpx.get(system.urls["alpha"] + "/runs").json() == {"runs": 1}
        for replica in system.processes[1:3]:
            beta_env = httpx.get(f"{replica.url}/env").json()
            assert beta_env["FAKE_ALPHA_URL"] == system.urls["alpha"]
    text = log.read_text()
    assert "beta-worker | working" in text
    stops = [line.split("stopping ")[1] for line in text.splitlines() if "| stopping " in line]
    assert stops == ["beta-worker", "beta.2", "beta.1", "alpha"]


@pytest.mark.slow
@pytest.mark.parametrize("log_dir", [None, "logs"], ids=["printed", "log-file"])
def test_a_process_that_dies_early_is_named(tmp_path: Path, log_dir: str | None) -> None:
    crash = '["python", "-c", "import sys; print(\'cannot bind\'); sys.exit(3)"]'
    workspace = _write_workspace(
        tmp_path / "ws", alpha_port=free_port(), beta_port=free_port(), alpha_command=crash
    )
    with (
        pytest.raises(StartupError) as caught,
        run_system(
            tmp_path / "data",
            root=workspace,
            gateway=False,
            printer=LogPrinter(io.StringIO()),
            durable=False,
            log_dir=tmp_path / log_dir if log_dir else None,
        ),
    ):
        pass
    assert str(caught.value) == "alpha: exited with code 3 before it was ready: cannot bind"


@pytest.mark.slow
def test_log_dir_takes_each_process_output_instead_of_the_printer(
    workspace: Path, tmp_path: Path
) -> None:
    printed = io.StringIO()
    logs = tmp_path / "logs"
    with run_system(
        tmp_path / "data",
        root=workspace,
        ports="free",
        gateway=False,
        printer=LogPrinter(printed),
        durable=False,
        log_dir=logs,
    ) as system:
        assert all(p.pump is None for p in system.processes)
        assert wait_until(lambda: "working" in (logs / "beta-worker.log").read_text(), timeout=5)
    assert sorted(path.name for path in logs.iterdir()) == [
        "alpha.log",
        "beta-worker.log",
        "beta.log",
    ]
    assert "beta-worker | working" not in printed.getvalue()
    assert f"beta-worker logs to {logs / 'beta-worker.log'}" in printed.getvalue()


@pytest.mark.slow
def test_fresh_starts_empty(workspace: Path, tmp_path: Path) -> None:
    printer = LogPrinter(io.StringIO())
    for fresh in (False, True):
        with run_system(
            tmp_path / "data",
            root=workspace,
            ports="free",
            gateway=False,
            printer=printer,
            durable=False,
            fresh=fresh,
        ) as system:
            assert httpx.get(system.urls["alpha"] + "/runs").json() == {"runs": 1}


@pytest.mark.slow
def test_up_stops_when_a_process_dies(tmp_path: Path) -> None:
    script = "import time; time.sleep(2); print('queue gone'); raise SystemExit(4)"
    dying = f'["python", "-c", "{script}"]'
    workspace = _write_workspace(
        tmp_path / "ws", alpha_port=free_port(), beta_port=free_port(), worker_command=dying
    )
    result = subprocess.run(
        [sys.executable, "-m", "taskmesh", "up", "--data-dir", str(tmp_path / "d"), "--no-gateway"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    message = "taskmesh up: beta-worker: exited unexpectedly with code 4: queue gone"
    assert result.stderr.strip() == message
    assert "stopping alpha" in result.stdout


def test_fresh_refuses_a_directory_that_is_not_ours(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(StartupError, match="not a Taskmesh data directory"):
        prepare_data_dir(tmp_path, fresh=True)
    assert (tmp_path / "precious.txt").exists()


def _up(workspace: Path, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskmesh", "up", "--data-dir", str(data_dir), "--no-gateway"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_up(up: subprocess.Popen[str]) -> list[str]:
    assert up.stdout is not None
    lines = []
    for line in up.stdout:
        lines.append(line)
        if "Taskmesh is up" in line:
            return lines
    raise AssertionError("".join(lines) + (up.stderr.read() if up.stderr else ""))


def _all_gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


def _runs(workspace: Path) -> int:
    port = discover_services(workspace)[0].processes[0].port
    response = httpx.get(f"http://127.0.0.1:{port}/runs")
    return int(response.json()["runs"])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_up_stops_everything_and_keeps_its_data(
    workspace: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    for run in (1, 2):
        with _up(workspace, tmp_path / "data") as up:
            try:
                _wait_up(up)
                children = psutil.Process(up.pid).children(recursive=True)
                assert len(children) >= 5  # postgres, redis, alpha, beta, beta-worker
                assert _runs(workspace) == run  # the second run sees the first one's data
                up.send_signal(sig)
                out, err = up.communicate(timeout=60)
            finally:
                if up.poll() is None:
                    up.kill()
            if sig == signal.SIGKILL:  # no chance to clean up: the kernel stops the children
                assert up.returncode == -signal.SIGKILL
            else:
                assert up.returncode == 0, err
                assert "stopped" in out
            assert wait_until(functools.partial(_all_gone, children), timeout=10)
    if sig != signal.SIGKILL:
        assert not (tmp_path / "data" / "running.json").exists()


@pytest.mark.slow
def test_up_explains_a_taken_port_in_one_line(workspace: Path, tmp_path: Path) -> None:
    port = discover_services(workspace)[1].processes[0].port
    assert port is not None
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = subprocess.run(
            [sys.executable, "-m", "taskmesh", "up", "--data-dir", str(tmp_path), "--no-gateway"],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"taskmesh up: beta: port {port} is already in use by another program"
    )
    assert "Traceback" not in result.stdout


def test_stale_state_file_is_ignored(tmp_path: Path) -> None:
    stale = {"postgres_url": "postgresql://x@127.0.0.1:1/p", "redis_url": "redis://127.0.0.1:1/0"}
    (tmp_path / "running.json").write_text(json.dumps(stale))
    assert read_state(tmp_path) is None


@pytest.mark.slow
def test_one_off_commands_use_the_running_system(workspace: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    printer = LogPrinter(io.StringIO())
    with run_system(
        data_dir, root=workspace, ports="free", gateway=False, printer=printer, durable=False
    ) as system:
        assert read_state(data_dir) is not None
        with service_context(data_dir, "alpha", root=workspace, printer=printer) as (_, context):
            assert context.databases == {"fake_alpha": system.backing.database_url("fake_alpha")}
            assert context.redis_url == system.backing.redis_url_for(0)
        assert httpx.get(system.urls["alpha"] + "/runs").json() == {"runs": 2}  # migrated again
    assert read_state(data_dir) is None
