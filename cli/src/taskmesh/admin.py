"""One-off commands of a service (e.g. auth's create-admin), run as `taskmesh up` runs it."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from taskmesh.backing import Backing, postgres_answers, start_backing
from taskmesh.manifest import Context, Secrets, Service, discover_services
from taskmesh.printer import LogPrinter
from taskmesh.system import STATE_FILE, StartupError, migrate, prepare_data_dir, workspace_root


@contextlib.contextmanager
def service_context(
    data_dir: Path, name: str, *, root: Path | None = None, printer: LogPrinter | None = None
) -> Iterator[tuple[Service, Context]]:
    """What a one-off command of service `name` needs: its manifest and a migrated database.

    Uses the servers of a running `taskmesh up` on `data_dir`, or starts them for the block.
    """
    printer = printer or LogPrinter(sys.stderr)
    services = discover_services(root or workspace_root())
    service = next((candidate for candidate in services if candidate.name == name), None)
    if service is None:
        raise StartupError(f"{name}: there is no services/{name} with a [tool.taskmesh] manifest")
    urls = {
        spec.name: f"http://127.0.0.1:{spec.port}"
        for candidate in services
        for spec in candidate.processes
        if spec.port is not None
    }
    prepare_data_dir(data_dir, fresh=False)
    state = read_state(data_dir)
    with contextlib.ExitStack() as stack:
        if state is not None:
            backing = Backing(state["postgres_url"], state["redis_url"], origin="taskmesh up")
        else:
            backing = stack.enter_context(start_backing(data_dir))
        databases = {}
        if service.database:
            databases[service.database] = backing.create_database(service.database, replace=False)
        context = Context(
            urls=urls,
            secrets=Secrets(data_dir / "secrets.env"),
            databases=databases,
            redis_url=backing.redis_url_for(0),
            public_url=state["public_url"] if state else urls.get("web", ""),
            data_dir=data_dir,
        )
        migrate(service, context, printer)
        yield service, context


def read_state(data_dir: Path) -> dict[str, str] | None:
    """The servers of a `taskmesh up` running on `data_dir`, if one is."""
    try:
        state: dict[str, str] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if postgres_answers(state.get("postgres_url", "")) else None
