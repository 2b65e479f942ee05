"""Suite 1, fast: tasks replicas SIGKILLed (clients retry) and rolled with SIGTERM under creates."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from reliability import replicas
from reliability.harness import start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_no_acknowledged_create_is_lost_or_doubled_when_replicas_die(
    nginx: str, tmp_path: Path
) -> None:
    del nginx  # run_system finds it; the fixture only decides skip or fail
    # Restarts 6 s apart leave each replica time to come back and serve before the next one goes
    # (the gateway itself copes with faster rolling: gateway/tests, docs/deploy.md).
    with start(tmp_path / "system") as harness:
        killed = asyncio.run(
            replicas.run(harness, sig=signal.SIGKILL, restarts_wanted=2, period=6, retries=3)
        )
        rolled = asyncio.run(
            replicas.run(harness, sig=signal.SIGTERM, restarts_wanted=2, period=6, retries=0)
        )

    assert killed.restarts >= 2
    assert killed.writes.keys > 500
    assert killed.writes.acknowledged == killed.writes.keys
    assert killed.writes.lost == 0
    assert killed.writes.rows == killed.writes.distinct_rows  # no duplicates
    assert killed.errors == 0, killed.failures

    assert rolled.restarts >= 2
    assert rolled.writes.lost == 0
    assert rolled.writes.rows == rolled.writes.distinct_rows
    # No retries and still no errors: the replicas drain (taskmesh_common.serving) instead of
    # closing nginx's pooled connections under a POST it may be sending (defects.md item 2).
    assert rolled.errors == 0, rolled.failures
