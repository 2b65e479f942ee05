"""Schemathesis against every API through the gateway, all phases incl. stateful, as two users.

The services fuzz their own apps directly (services/*/tests/api/*schemathesis*); this run goes
through nginx as a client does. CI keeps it bounded with few examples per operation
(`TASKMESH_SCHEMATHESIS_EXAMPLES`, default 5); raise it for a longer run. `logout-all` is left
out here because it would void the run's token; the auth suite fuzzes it with a fresh login per
request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Account, Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXCLUDED = {"auth": ["--exclude-path", "/v1/sessions/logout-all"]}


@pytest.mark.parametrize("user", ["alice", "bob"])
@pytest.mark.parametrize("api", ["auth", "tasks", "activity"])
def test_schemathesis_through_the_gateway_finds_nothing(
    secured: Gateway, api: str, user: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    account: Account = request.getfixturevalue(user)
    base = f"{secured.url}/api/{api}"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/openapi.json",
        "--url",
        base,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "all",
        "--max-examples",
        os.environ.get("TASKMESH_SCHEMATHESIS_EXAMPLES", "5"),
        "--seed",
        "20261123",
        "--workers",
        "1",
        # Below the gateway's 50 requests/s per address, so no answer is a rate-limit 429.
        "--rate-limit",
        "30/s",
        "--suppress-health-check",
        "all",
        "--header",
        f"Authorization:Bearer {account.token}",
        "--no-color",
        *EXCLUDED.get(api, []),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=False
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
