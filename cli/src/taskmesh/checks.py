"""`taskmesh test`: every quality gate and every test suite, as the README and CI run them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from taskmesh.system import workspace_root

TEST_DIRS = (
    "libs/*/tests",
    "cli/tests",
    "services/*/tests",
    "gateway/tests",
    "tests/*",
    "bench/tests",
)
NO_TESTS_COLLECTED = 5


def source_dirs(root: Path) -> list[str]:
    """Every package's ``src`` plus the fuzz, bench and reliability code, relative to `root`."""
    packages = [*root.glob("libs/*/src"), root / "cli/src", *root.glob("services/*/src")]
    found = [*packages, root / "fuzz", root / "bench", root / "reliability"]
    return [str(path.relative_to(root)) for path in sorted(found) if path.is_dir()]


def suite_dirs(root: Path) -> list[str]:
    """The test directories that exist, relative to `root`."""
    found = [path for pattern in TEST_DIRS for path in sorted(root.glob(pattern)) if path.is_dir()]
    return [str(path.relative_to(root)) for path in found]


def run_checks(*, pytest_args: Sequence[str] = (), root: Path | None = None) -> int:
    """Run ruff, ruff format, mypy and pytest; return 0 only if all pass and tests ran."""
    root = root or workspace_root()
    python = sys.executable
    steps = [
        ("lint", [python, "-m", "ruff", "check", "."]),
        ("format", [python, "-m", "ruff", "format", "--check", "."]),
        ("types", [python, "-m", "mypy", *source_dirs(root)]),
        ("tests", [python, "-m", "pytest", *suite_dirs(root), *pytest_args]),
    ]
    failed = []
    for name, command in steps:
        click.secho(f"==> {name}: {' '.join(command[1:])}", bold=True)
        code = subprocess.run(command, cwd=root, check=False).returncode
        if name == "tests" and code == NO_TESTS_COLLECTED:
            click.secho("no tests ran: that is a failure", fg="red")
        if code != 0:
            failed.append(name)
    if failed:
        click.secho(f"FAILED: {', '.join(failed)}", fg="red", bold=True)
        return 1
    click.secho("all checks passed", fg="green", bold=True)
    return 0
