"""Suite 1: tasks replicas killed (SIGKILL) or rolled (SIGTERM) under idempotent creates."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from reliability import load as loadgen
from reliability.harness import Harness, unique
from reliability.load import Load, Outcome, Worker
from reliability.report import Report
from reliability.verify import Writes, writes


@dataclass(frozen=True)
class RunResult:
    """One run: creates under repeated replica restarts."""

    mode: str
    writes: Writes
    errors: int  # creates not acknowledged after all tries
    retried: int  # creates that needed more than one try
    restarts: int
    seconds: float
    failures: dict[str, int]  # final status (or error name) of each failed create

    @property
    def rate(self) -> float:
        return self.writes.acknowledged / self.seconds if self.seconds else 0.0


async def run(
    harness: Harness,
    *,
    sig: signal.Signals,
    total: int | None = None,
    restarts_wanted: int | None = None,
    concurrency: int = 16,
    period: float = 10.0,
    retries: int = 3,
) -> RunResult:
    """Send `total` creates (or until `restarts_wanted` restarts are done); every `period` s
    restart the next tasks replica with `sig`."""
    prefix = unique(sig.name.lower())
    replicas = [p.name for p in harness.replicas("tasks")]
    async with loadgen.workers(harness.url, concurrency, subnet=10 + sig) as made:
        load = Load(made)
        restarts = 0
        finished = asyncio.Event()

        async def chaos() -> None:
            nonlocal restarts
            while not finished.is_set():
                try:
                    await asyncio.wait_for(finished.wait(), period)
                except TimeoutError:
                    victim = replicas[restarts % len(replicas)]
                    await harness.call(harness.restart, victim, sig)
                    restarts += 1

        async def create(worker: Worker, index: int) -> Outcome:
            return await load.create(worker, f"{prefix}-{index}", retries=retries)

        chaos_task = asyncio.create_task(chaos())
        wanted = restarts_wanted

        def enough() -> bool:
            return wanted is not None and restarts >= wanted

        await loadgen.closed_loop(load, create, total=total, done=enough)
        seconds = load.now()
        finished.set()
        await chaos_task
    failed = [o for o in load.outcomes if not o.ok]
    failures: dict[str, int] = {}
    for outcome in failed:
        last = outcome.attempts[-1]
        name = str(last.status) if last.status is not None else last.error
        failures[name] = failures.get(name, 0) + 1
    return RunResult(
        mode=sig.name,
        writes=writes(harness, load.outcomes),
        errors=len(failed),
        retried=sum(1 for o in load.outcomes if len(o.attempts) > 1),
        restarts=restarts,
        seconds=seconds,
        failures=failures,
    )


def judge(report: Report, result: RunResult, *, retries: int) -> None:
    """Add the run's figures to `report`."""
    w = result.writes
    mode = f"{result.mode}, {'retries <= ' + str(retries) if retries else 'no retries'}"
    report.check(
        f"{mode}: creates acknowledged",
        f"{w.acknowledged} / {w.keys}",
        "all",
        w.acknowledged == w.keys,
    )
    report.check(f"{mode}: acknowledged writes lost", w.lost, "0", w.lost == 0)
    report.check(
        f"{mode}: rows vs distinct keys",
        f"{w.rows} rows, {w.distinct_rows} keys, {w.duplicates} duplicates",
        "rows == distinct keys",
        w.duplicates == 0,
    )
    report.check(
        f"{mode}: errors{' after retry' if retries else ''}",
        f"{result.errors} {result.failures or ''}".strip(),
        "0",
        result.errors == 0,
    )
    if result.mode == "SIGTERM" and result.errors:
        report.notes.append(
            "SIGTERM errors without retries: the replicas' graceful drain "
            "(`python -m taskmesh_tasks`, through `taskmesh_common.serving`) should prevent them; "
            "compare with `docs/reliability/defects.md` item 2 (a 502 is a POST nginx sent on a "
            "pooled connection the stopping replica closed)."
        )
    if result.mode == "SIGTERM":
        report.notes.append(
            "SIGTERM: each replica stops listening (nginx fails over before it sends anything), "
            "answers requests on its open connections with `Connection: close` and exits once "
            "none is left (at most `TASKMESH_DRAIN_SECONDS`, default 10 s)."
        )
    report.notes.append(
        f"{mode}: {result.restarts} restarts in {result.seconds:.1f} s, "
        f"{result.rate:.0f} acknowledged creates/s, {result.retried} creates needed a retry."
    )


async def suite(
    harness: Harness, *, total: int, period: float, command: str, concurrency: int = 16
) -> Report:
    """Both runs (SIGKILL with client retries, SIGTERM rolling restarts without) and a report."""
    report = Report(
        "replica-crash",
        "Replica crash under load",
        command,
        setup=[
            "`run_system` as `taskmesh up`: nginx gateway, 2 tasks replicas, durable PostgreSQL.",
            f"{total} creates per run with unique `Idempotency-Key`s, concurrency {concurrency}, "
            f"each worker its own user and loopback source address.",
            f"Every {period:g} s the next tasks replica is stopped and started again with the same "
            "argv/env (read from /proc before the run), and the run waits for its /readyz.",
        ],
    )
    killed = await run(harness, sig=signal.SIGKILL, total=total, period=period, retries=3)
    judge(report, killed, retries=3)
    rolled = await run(harness, sig=signal.SIGTERM, total=total, period=period, retries=0)
    judge(report, rolled, retries=0)
    return report
