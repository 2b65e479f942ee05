"""The soak's judgement of a hold, on made-up runs (no system needed)."""

from __future__ import annotations

import json
from pathlib import Path

from reliability.load import Attempt, Load, Outcome
from reliability.soak import Hold, failed_only_drift, gateway_p99s

DURATION = 300.0


def made_up_hold(*, early_ms: float, late_ms: float, status: int = 200, grow: float = 0) -> Hold:
    """A 5-minute hold: one request a second, early and late latencies, memory growing by `grow`."""
    load = Load([])
    late_from = DURATION - 120  # the late window: the last 2 minutes
    for second in range(int(DURATION)):
        seconds = (early_ms if second < late_from else late_ms) / 1000
        outcome = Outcome("read", None, [Attempt(second, second + seconds, status, False)])
        load.outcomes.append(outcome)
    run = Hold(load, DURATION, wall_start=0.0)
    run.memory = [(t, {"tasks": int(100e6 * (1 + grow * t / DURATION))}) for t in range(0, 301, 5)]
    return run


def test_a_hold_whose_only_failure_is_drift_is_held_again() -> None:
    assert failed_only_drift(made_up_hold(early_ms=10, late_ms=13))
    assert not failed_only_drift(made_up_hold(early_ms=10, late_ms=11))


def test_a_hold_with_errors_or_growing_memory_is_not_held_again() -> None:
    assert not failed_only_drift(made_up_hold(early_ms=10, late_ms=13, status=500))
    assert not failed_only_drift(made_up_hold(early_ms=10, late_ms=13, grow=0.5))


def test_gateway_p99_is_read_per_30_seconds_from_its_access_log(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    start = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    lines = ["2027/01/15 08:00:01 [warn] 1#1: not an access-log line"]
    for second in range(60):
        stamp = f"2027-01-15T08:00:{second:02d}+00:00"
        seconds = 0.002 if second < 30 else 0.009
        lines.append(json.dumps({"ts": stamp, "msg": "request", "request_time": seconds}))
    lines.append('{"ts": "2027-01-15T08:00:59+00:00", "request_time": 0.5')  # cut short
    log.write_text("\n".join(lines) + "\n")

    assert gateway_p99s(log, start, 60) == [0.002, 0.009]
    assert gateway_p99s(tmp_path / "missing.log", start, 60) == []
