"""Suite 3: Redis stopped under a read/write run; then every event reaches the feed exactly once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from reliability import harness as h
from reliability import load as loadgen
from reliability.load import Load, Outcome, Worker
from reliability.report import Report
from reliability.verify import feed_entries


@dataclass(frozen=True)
class Result:
    """What the run saw."""

    reads: int
    writes: int
    errors: dict[str, int]
    acknowledged: list[str]  # task ids
    outage: tuple[float, float]
    delivered_after: float  # seconds from Redis' return until the feed held every event
    duplicates: int  # feed entries beyond one per task
    missing: int  # acknowledged tasks without a feed entry at the deadline
    slowest: float


async def run(
    harness: h.Harness,
    *,
    baseline: float = 10.0,
    outage: float = 30.0,
    after: float = 10.0,
    deadline: float = 30.0,
    concurrency: int = 16,
    subnet: int = 40,
) -> Result:
    """Creates and reads; Redis is down from `baseline` for `outage` seconds."""
    prefix = h.unique("redis")
    window: list[float] = []
    async with loadgen.workers(harness.url, concurrency, subnet=subnet) as made:
        load = Load(made)

        async def mixed(worker: Worker, index: int) -> Outcome:
            if index % 2:
                return await load.read(worker)
            return await load.create(worker, f"{prefix}-{index}")

        async def chaos() -> None:
            await asyncio.sleep(baseline)
            window.append(load.now())
            await harness.call(h.stop_redis, harness)
            await asyncio.sleep(outage)
            await harness.call(h.start_redis, harness)
            window.append(load.now())

        end = baseline + outage + after
        await asyncio.gather(chaos(), loadgen.closed_loop(load, mixed, until=end))
        back_at = load.t0 + window[1]
    outcomes = load.outcomes
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if not outcome.ok:
            last = outcome.attempts[-1]
            name = f"{outcome.op} {last.status or last.error}"
            errors[name] = errors.get(name, 0) + 1
    acked = [str(o.body["id"]) for o in outcomes if o.op == "create" and o.ok]
    counts: dict[str, int] = {}
    delivered_after = float("inf")
    while time.monotonic() - back_at < deadline + 5:
        counts = await asyncio.to_thread(feed_entries, harness, acked)
        if len(counts) == len(acked):
            delivered_after = time.monotonic() - back_at
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # a late redelivery would show up as a second entry
    counts = await asyncio.to_thread(feed_entries, harness, acked)
    return Result(
        reads=sum(1 for o in outcomes if o.op == "read"),
        writes=len(acked),
        errors=errors,
        acknowledged=acked,
        outage=(window[0], window[1]),
        delivered_after=delivered_after,
        duplicates=sum(n - 1 for n in counts.values() if n > 1),
        missing=len(acked) - len(counts),
        slowest=max(a.seconds for o in outcomes for a in o.attempts),
    )


def judge(report: Report, result: Result, *, deadline: float = 30.0) -> None:
    """Add the run's figures to `report`."""
    errors = sum(result.errors.values())
    report.check(
        "read and write errors",
        f"{errors} {result.errors or ''}".strip(),
        "0",
        errors == 0,
    )
    report.check(
        "events in the feed after Redis returned",
        f"all {result.writes} after {result.delivered_after:.1f} s"
        if result.missing == 0
        else f"{result.missing} of {result.writes} missing",
        f"all within {deadline:g} s",
        result.missing == 0 and result.delivered_after <= deadline,
    )
    report.check("duplicate feed entries", result.duplicates, "0", result.duplicates == 0)
    report.notes.append(
        f"{result.reads} reads and {result.writes} acknowledged creates; Redis down from "
        f"{result.outage[0]:.1f} s to {result.outage[1]:.1f} s of the run; slowest request "
        f"{result.slowest:.2f} s."
    )


async def suite(harness: h.Harness, *, command: str, outage: float = 30.0) -> Report:
    """The run and its report."""
    report = Report(
        "redis-outage",
        "Redis outage",
        command,
        setup=[
            "`run_system` as `taskmesh up`: nginx gateway, 2 tasks replicas, activity API and "
            "worker.",
            "Creates and list reads at concurrency 16 (no client retries); Redis stopped "
            f"(SIGTERM) for {outage:g} s after 10 s, then started again with its original command.",
            "Delivery is checked in the activity database: one `task.created` entry per "
            "acknowledged task.",
        ],
    )
    judge(report, await run(harness, outage=outage))
    return report
