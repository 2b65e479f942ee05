"""Backing servers start from each source and never outlive their owner."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
from taskmesh.backing import (
    BackingError,
    Source,
    backing_source,
    find_postgres,
    find_redis,
    start_backing,
)
from taskmesh.processes import free_port, wait_until
from taskmesh.testing.programs import require_program

HOLDER = Path(__file__).with_name("hold_backing.py")


def _check_servers(data_dir: Path, source: Source) -> str:
    with start_backing(data_dir, source=source, durable=False) as backing:
        assert backing.origin == f"postgres={source} redis={source}"
        url = backing.create_database("test_cli_lifecycle")
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0])


def _postgres_on_path() -> str | None:
    with contextlib.suppress(BackingError):
        return str(find_postgres("path").initdb)  # PATH, or Debian's /usr/lib/postgresql/N/bin
    return None


def _redis_on_path() -> str | None:
    with contextlib.suppress(BackingError):
        return str(find_redis("path")[0])
    return None


def test_servers_start_from_path_binaries(tmp_path: Path) -> None:
    require_program("initdb", finder=_postgres_on_path)
    require_program("redis-server", finder=_redis_on_path)
    assert _check_servers(tmp_path, "path")


def test_servers_start_from_wheels(tmp_path: Path) -> None:
    assert _check_servers(tmp_path, "wheels").startswith("18")


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with start_backing(tmp_path, source="wheels") as backing:
        url = backing.create_database("test_cli_persist")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    with start_backing(tmp_path, source="wheels") as backing:
        url = backing.create_database("test_cli_persist", replace=False)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT value FROM kept").fetchall() == [("still here",)]


def test_data_from_another_major_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "PG_VERSION").write_text("9\n")
    with (
        pytest.raises(BackingError, match="PostgreSQL 9 data"),
        start_backing(tmp_path, source="wheels"),
    ):
        pass


def test_unreachable_urls_are_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dead = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:s3cret@127.0.0.1:{dead}/postgres")
    with (
        pytest.raises(BackingError, match=f"no PostgreSQL answers at .*:{dead}/postgres") as caught,
        start_backing(tmp_path, source="auto"),
    ):
        pass
    assert "s3cret" not in str(caught.value)
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{dead}/0")
    with (
        pytest.raises(BackingError, match="REDIS_URL: no Redis answers"),
        start_backing(tmp_path, source="auto", durable=False),
    ):
        pass


def test_unknown_source_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKMESH_BACKING", "docker")
    with pytest.raises(BackingError, match="TASKMESH_BACKING must be one of"):
        backing_source()


def _start_holder(data_dir: Path) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    holder = subprocess.Popen(
        [sys.executable, str(HOLDER), str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TASKMESH_BACKING": "wheels"},
    )
    assert holder.stdout is not None
    report = json.loads(holder.stdout.readline())
    children = psutil.Process(report["pid"]).children(recursive=True)
    names = {child.name() for child in children}
    assert {"postgres", "valkey-server"} <= names, names
    return holder, children


def _all_gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_no_server_outlives_its_owner(tmp_path: Path, sig: signal.Signals) -> None:
    holder, children = _start_holder(tmp_path)
    try:
        holder.send_signal(sig)
        holder.wait(30)
        assert wait_until(lambda: _all_gone(children), timeout=30), [
            (p.pid, p.name()) for p in children if p.is_running()
        ]
    finally:
        for process in children:
            if process.is_running():
                process.kill()
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
