"""Schemathesis against the running service: all phases, all checks, with a user's token."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SCHEMATHESIS = shutil.which("schemathesis") or shutil.which("st")
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"


@pytest.mark.slow
@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
def test_schemathesis_finds_no_failure(
    live_server: Any, make_user: Callable[..., Any], tmp_path: Path
) -> None:
    assert SCHEMATHESIS is not None
    # An admin reaches every owner through `owner`, so generated owner ids exercise real paths.
    user = make_user(admin=True)
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_server.url}/openapi.json",
        "--phases=examples,coverage,fuzzing,stateful",
        "--checks=all",
        "--mode=all",
        "--max-examples=60",
        "--generation-deterministic",
        "--workers=1",
        "--suppress-health-check=all",
        "--header",
        f"Authorization:{user.headers['Authorization']}",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
