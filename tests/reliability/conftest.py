"""Fast variants of the reliability suites: the whole system behind nginx, faults injected."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from taskmesh import gateway

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `reliability` is a top-level directory of the workspace


@pytest.fixture(scope="session")
def nginx(require_program: Callable[..., str]) -> str:
    """The nginx executable (skip without it; fail under CI=true)."""
    return require_program("nginx", finder=gateway.find_nginx)
