"""Suite 3, fast: Redis stopped under reads and writes; the feed then gets every event once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reliability import redis_outage
from reliability.harness import start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_reads_and_writes_survive_redis_and_events_arrive_exactly_once(
    nginx: str, tmp_path: Path
) -> None:
    del nginx
    with start(tmp_path / "system") as harness:
        result = asyncio.run(
            redis_outage.run(harness, baseline=4, outage=8, after=3, deadline=30, concurrency=8)
        )

    assert result.errors == {}
    assert result.writes > 0
    assert result.reads > 0
    assert result.missing == 0
    assert result.delivered_after <= 30
    assert result.duplicates == 0
