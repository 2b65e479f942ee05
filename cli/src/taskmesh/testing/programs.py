"""Tests that need a system program skip without it, except in CI where every test must run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    """Whether we run under CI (``CI=true``), where a missing program is a failure."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_program(name: str, *, finder: Callable[[], str | None] | None = None) -> str:
    """The path of program `name`; skip the test without it, or fail it under ``CI=true``.

    `finder` overrides the PATH lookup (e.g. ``taskmesh.gateway.find_nginx``).
    """
    found = finder() if finder is not None else shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (not found on PATH)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)
