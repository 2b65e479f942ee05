"""The `taskmesh` command: run the system, run its tests, and administer it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from taskmesh.admin import service_context
from taskmesh.backing import BackingError
from taskmesh.manifest import ManifestError
from taskmesh.printer import LogPrinter
from taskmesh.processes import termination_as_interrupt
from taskmesh.system import StartupError, default_data_dir, run_system, service_env

app = typer.Typer(
    help="Taskmesh: run the whole system locally, its tests, and admin tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Where PostgreSQL, Redis and secrets keep data [default: user data dir]."),
]
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
EXPECTED = (StartupError, BackingError, ManifestError)


@app.command()
def up(
    data_dir: DataDir = None,
    fresh: Annotated[bool, typer.Option(help="Delete the data directory first.")] = False,
    gateway: Annotated[
        bool | None,
        typer.Option("--gateway/--no-gateway", help="Run nginx in front [default: if installed]."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each process has to become ready.")] = 60,
) -> None:
    """Start PostgreSQL, Redis, every service and the gateway; Ctrl-C stops them all."""
    printer = LogPrinter()
    data_dir = data_dir or default_data_dir()
    try:
        with (
            termination_as_interrupt(),
            run_system(
                data_dir, fresh=fresh, gateway=gateway, printer=printer, ready_timeout=timeout
            ) as system,
        ):
            for name, url in system.urls.items():
                printer.info(f"{name:<10} {url}")
            printer.info(f"Taskmesh is up: open {system.public_url}  (Ctrl-C to stop)")
            while (gone := system.exited()) is None:
                time.sleep(0.3)
            raise StartupError(
                f"{gone.name}: exited unexpectedly with code {gone.process.returncode}: "
                f"{gone.last_line().strip()}"
            )
    except KeyboardInterrupt:
        printer.info("stopped")
    except EXPECTED as error:
        typer.secho(f"taskmesh up: {error}", err=True, fg="red")
        raise typer.Exit(1) from None


def _auth_admin(data_dir: Path | None, command: str, args: list[str]) -> int:
    """Run ``python -m taskmesh_auth.admin COMMAND ARGS`` the way `taskmesh up` runs auth."""
    try:
        with (
            termination_as_interrupt(),
            service_context(data_dir or default_data_dir(), "auth") as (service, context),
        ):
            argv = [sys.executable, "-m", "taskmesh_auth.admin", command, *args]
            return subprocess.run(
                argv, cwd=service.directory, env=service_env(service, context), check=False
            ).returncode
    except EXPECTED as error:
        typer.secho(f"taskmesh {command}: {error}", err=True, fg="red")
        return 1


@app.command("create-admin", context_settings=PASS_THROUGH)
def create_admin(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Create (or promote) an administrator; options go to the auth service's admin command."""
    raise typer.Exit(_auth_admin(data_dir, "create-admin", ctx.args))


@app.command("rotate-keys", context_settings=PASS_THROUGH)
def rotate_keys(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Rotate the auth service's token signing keys; options go to its admin command."""
    raise typer.Exit(_auth_admin(data_dir, "rotate-keys", ctx.args))


@app.command(context_settings=PASS_THROUGH)
def test(ctx: typer.Context) -> None:
    """Lint, format check, type check and every test suite; extra options go to pytest."""
    from taskmesh.checks import run_checks

    raise typer.Exit(run_checks(pytest_args=ctx.args))


def main() -> None:
    """Entry point of the `taskmesh` script."""
    app()
