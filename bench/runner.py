"""Scenarios run in interleaved rounds; each figure is the median over rounds."""

from __future__ import annotations

import contextlib
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.wrk import WrkResult, run_wrk


@dataclass(frozen=True)
class Load:
    """How hard and how long wrk pushes."""

    duration: float
    connections: int
    threads: int = 1


@dataclass
class Scenario:
    """A URL, a Lua script (rebuilt each round) and the processes serving it."""

    name: str
    url: str
    script: Callable[[], str]
    server_pids: Callable[[], set[int]]
    database_pids: Callable[[], set[int]]
    group: str  # "baseline", "direct", "gateway"


@dataclass
class Measurement:
    """One wrk run of one scenario with the CPU its servers spent."""

    result: WrkResult
    server_cpu_s: float
    database_cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        """Flat figures for JSON."""
        requests = max(self.result.requests, 1)
        return {
            "rps": self.result.rps,
            "requests": self.result.requests,
            "p50_ms": self.result.p50_ms,
            "p90_ms": self.result.p90_ms,
            "p99_ms": self.result.p99_ms,
            "errors": self.result.errors,
            "non2xx": self.result.non2xx,
            "socket_errors": self.result.socket_errors,
            "server_cpu_us_per_request": self.server_cpu_s / requests * 1e6,
            "database_cpu_us_per_request": self.database_cpu_s / requests * 1e6,
        }


def measure(scenario: Scenario, load: Load) -> Measurement:
    """Run `scenario` once under `load`."""
    servers, database = scenario.server_pids(), scenario.database_pids()
    script = scenario.script()
    before = procs.cpu_by_pid(servers), procs.cpu_by_pid(database)
    result = run_wrk(
        scenario.url,
        script,
        duration=load.duration,
        connections=load.connections,
        threads=load.threads,
    )
    # Fresh pid lists after the run too: PostgreSQL backends come and go with connections.
    after = procs.cpu_by_pid(scenario.server_pids()), procs.cpu_by_pid(scenario.database_pids())
    return Measurement(
        result, procs.cpu_delta(before[0], after[0]), procs.cpu_delta(before[1], after[1])
    )


MEDIAN_KEYS = (
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "server_cpu_us_per_request",
    "database_cpu_us_per_request",
)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (errors are summed: one error anywhere counts)."""
    summary: dict[str, Any] = {
        key: statistics.median(r[key] for r in rounds) for key in MEDIAN_KEYS
    }
    summary["errors"] = sum(r["errors"] for r in rounds)
    summary["requests"] = sum(r["requests"] for r in rounds)
    summary["rounds"] = rounds
    return summary


def log_line(text: str) -> None:
    """Progress on stderr."""
    print(text, file=sys.stderr, flush=True)


def run_rounds(
    scenarios: list[Scenario],
    load: Load,
    rounds: int,
    *,
    around: Callable[[Scenario], contextlib.AbstractContextManager[object]] | None = None,
    log: Callable[[str], None] = log_line,
) -> dict[str, dict[str, Any]]:
    """Run every scenario once per round, interleaved, and summarize each over the rounds.

    `around` wraps each run (e.g. to sample memory during the mixed scenario).
    """
    figures: dict[str, list[dict[str, Any]]] = {s.name: [] for s in scenarios}
    # One short unrecorded pass first: JWKS fetches, prepared statements, connection pools and
    # lazy imports would otherwise land in the first round of whatever runs first.
    warmup = Load(duration=min(2.0, load.duration), connections=load.connections)
    for scenario in scenarios:
        measure(scenario, warmup)
    for index in range(rounds):
        for scenario in scenarios:
            with around(scenario) if around else contextlib.nullcontext():
                figures[scenario.name].append(measure(scenario, load).as_dict())
            last = figures[scenario.name][-1]
            log(
                f"round {index + 1}/{rounds} {scenario.name:32} {last['rps']:9.0f} rps "
                f"p50 {last['p50_ms']:7.2f} ms p99 {last['p99_ms']:7.2f} ms "
                f"errors {last['errors']} cpu {last['server_cpu_us_per_request']:.0f} us/req"
            )
    return {name: summarize(values) for name, values in figures.items()}
