"""Suite 2: PostgreSQL crashes (`pg_ctl stop -m immediate`) three times during a write run."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

from reliability import harness as h
from reliability import load as loadgen
from reliability.load import Load, Outcome, Worker
from reliability.report import Report
from reliability.verify import writes


@dataclass(frozen=True)
class Outage:
    """One crash: when PostgreSQL went down and when it answered again (run seconds)."""

    down: float
    up: float


async def suite(
    harness: h.Harness,
    *,
    command: str,
    duration: float = 60.0,
    crashes: int = 3,
    outage: float = 4.0,
    concurrency: int = 16,
) -> Report:
    """Creates for `duration` s; PostgreSQL crashes `crashes` times, each down `outage` s."""
    prefix = h.unique("db")
    first = 12.0
    spacing = (duration - first - 4.0) / crashes
    outages: list[Outage] = []
    async with loadgen.workers(harness.url, concurrency, subnet=30) as made:
        load = Load(made)

        async def create(worker: Worker, index: int) -> Outcome:
            return await load.create(worker, f"{prefix}-{index}")

        async def chaos() -> None:
            for crash in range(crashes):
                # Leave at least 10 s after the last recovery: that window is measured.
                due = max(first + crash * spacing, outages[-1].up + 10.0 if outages else 0.0)
                await asyncio.sleep(max(0.0, due - load.now()))
                down = load.now()
                await harness.call(h.stop_postgres_immediately, harness)
                await asyncio.sleep(outage)
                await harness.call(h.start_postgres, harness)
                outages.append(Outage(down, load.now()))

        def over() -> bool:
            # `duration`, stretched so that 10 s follow the last recovery (they are measured).
            recovered = len(outages) == crashes and load.now() >= outages[-1].up + 10.5
            return load.now() >= duration and recovered

        await asyncio.gather(chaos(), loadgen.closed_loop(load, create, done=over))
    outcomes = load.outcomes
    attempts = [a for o in outcomes for a in o.attempts]
    per_second = loadgen.per_second(outcomes, start=0.0, end=load.now())
    baseline = statistics.mean(per_second[3 : int(first)])
    during = [a for a in attempts for o in outages if a.ended >= o.down and a.started <= o.up]
    bad = [a for a in during if a.status is not None and a.status >= 300]
    wrong = [
        a
        for a in during
        if a.status is None or (a.status >= 300 and not (a.status == 503 and a.problem))
    ]
    slowest = max((a.seconds for a in attempts), default=0.0)
    recoveries = []
    for o in outages:
        start = int(o.up) + 1
        back = next(
            (
                s - o.up + 1
                for s in range(start, len(per_second))
                if per_second[s] >= 0.9 * baseline
            ),
            float("inf"),
        )
        recoveries.append(back)
    result = writes(harness, outcomes)
    kinds: dict[str, int] = {}
    for a in wrong:
        name = f"{a.status}{'' if a.problem else ' (not problem+json)'}" if a.status else a.error
        kinds[name] = kinds.get(name, 0) + 1

    report = Report(
        "database-crash",
        "Database crash",
        command,
        setup=[
            "`run_system` as `taskmesh up` (durable PostgreSQL: fsync and synchronous commit on), "
            "nginx gateway, 2 tasks replicas.",
            f"{duration:g} s of creates (more if needed so that 10 s follow the last recovery) "
            f"at concurrency {concurrency}, no client retries; "
            f"PostgreSQL stopped with `pg_ctl stop -m immediate` {crashes} times, "
            f"down {outage:g} s each, then started again with its original command "
            "(crash recovery on start).",
        ],
    )
    report.check("acknowledged writes lost", result.lost, "0", result.lost == 0)
    report.check(
        "rows vs distinct keys",
        f"{result.rows} rows, {result.distinct_rows} keys",
        "no duplicates",
        result.duplicates == 0,
    )
    report.check(
        "failed responses during outages that are not 503 problem+json",
        f"{len(wrong)} of {len(bad)} {kinds or ''}".strip(),
        "0",
        not wrong,
    )
    report.check("slowest request", f"{slowest:.2f} s", "<= 2 s", slowest <= 2.0)
    report.check(
        "back to >= 90% of baseline throughput after each restart",
        ", ".join(f"{r:.0f} s" for r in recoveries),
        "<= 10 s",
        all(r <= 10 for r in recoveries),
    )
    report.notes += [
        f"Baseline: {baseline:.0f} acknowledged creates/s (seconds 3-{int(first)}).",
        "Outages (run seconds): "
        + ", ".join(f"{o.down:.1f}-{o.up:.1f}" for o in outages)
        + f"; {len(outcomes)} creates sent, {result.acknowledged} acknowledged.",
        "Throughput per second: " + " ".join(str(n) for n in per_second),
    ]
    return report
