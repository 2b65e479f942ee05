"""Suite 8: a long run at half the measured capacity: no errors, flat memory, stable p99."""

from __future__ import annotations

import asyncio
import gc
import statistics
from pathlib import Path

import psycopg

from reliability import harness as h
from reliability import load as loadgen
from reliability.load import Load, Outcome, Worker
from reliability.report import Report

SAMPLE_SECONDS = 5.0
WINDOW_SECONDS = 120.0


def stolen_ticks() -> tuple[int, int]:
    """(steal, total) CPU ticks of the machine so far: time the hypervisor gave to others."""
    with Path("/proc/stat").open() as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    return ticks[7], sum(ticks)


def window(outcomes: list[Outcome], start: float, end: float) -> list[float]:
    """Latencies of attempts that began in [start, end)."""
    return [a.seconds for o in outcomes for a in o.attempts if start <= a.started < end]


def windows(duration: float) -> tuple[float, float]:
    """(warm-up, span): the windows compared are [warm, warm + span) and the last `span`."""
    warm = min(60.0, duration / 5)  # the first stretch is warm-up (pools, caches)
    # Up to 2 minutes each (the halves of a 5-minute run): a p99 over 60 s is the ~150
    # slowest of ~15,000 requests, so one scheduler hiccup of a shared 2-core machine moved
    # it by 30-50 % between windows of the same steady run; 2 minutes average those out.
    return warm, min(WINDOW_SECONDS, (duration - warm) / 2)


def checkpoint(harness: h.Harness) -> None:
    """Run a PostgreSQL CHECKPOINT (superuser) and wait for it."""
    with psycopg.connect(harness.system.backing.postgres_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def stolen_share(steal: list[tuple[float, tuple[int, int]]], start: float, end: float) -> float:
    """Share of the machine's CPU time stolen between the samples nearest `start` and `end`."""
    inside = [ticks for t, ticks in steal if start - SAMPLE_SECONDS < t <= end + SAMPLE_SECONDS]
    if len(inside) < 2:
        return 0.0
    (steal_0, total_0), (steal_1, total_1) = inside[0], inside[-1]
    return (steal_1 - steal_0) / max(1, total_1 - total_0)


async def suite(
    harness: h.Harness,
    *,
    command: str,
    minutes: float = 5.0,
    probe_seconds: float = 20.0,
    concurrency: int = 16,
) -> Report:
    """Measure capacity (closed loop), then hold half of it (open loop) for `minutes`."""
    prefix = h.unique("soak")
    async with loadgen.workers(harness.url, concurrency, subnet=60) as made:
        probe = Load(made)

        async def mixed(load: Load, worker: Worker, index: int) -> Outcome:
            if index % 4 == 0:  # one write for three reads
                return await load.create(worker, f"{prefix}-{id(load)}-{index}")
            return await load.read(worker)

        await loadgen.closed_loop(probe, lambda w, i: mixed(probe, w, i), until=probe_seconds)
        measured = [o for o in probe.outcomes if o.ended >= 5.0]  # skip the warm-up
        capacity = sum(1 for o in measured if o.ok) / (probe.now() - 5.0)
        rate = capacity / 2

        soak = Load(made)
        duration = minutes * 60
        samples: list[tuple[float, int]] = []
        steal: list[tuple[float, tuple[int, int]]] = []

        async def sample() -> None:
            while soak.now() < duration:
                sizes = await asyncio.to_thread(harness.rss_bytes)
                samples.append((soak.now(), sum(sizes.values())))
                steal.append((soak.now(), stolen_ticks()))
                # The recorded outcomes only grow: frozen, the client's garbage collector stops
                # rescanning them, whose pauses grew with the run and read as a server p99 drift.
                gc.freeze()
                await asyncio.sleep(SAMPLE_SECONDS)

        warm, span = windows(duration)

        async def checkpoint_at_each_window() -> None:
            # PostgreSQL's first timed checkpoint comes 5 min after it started, so in a 5-minute
            # soak it always fell in the late window alone, and the full-page writes after it
            # read as drift. A checkpoint as each window opens puts both in the same phase.
            for start in (warm, duration - span):
                await asyncio.sleep(max(0.0, start - soak.now()))
                await asyncio.to_thread(checkpoint, harness)

        sampler = asyncio.create_task(sample())
        checkpoints = asyncio.create_task(checkpoint_at_each_window())
        skipped = await loadgen.open_loop(
            soak, lambda w, i: mixed(soak, w, i), rate=rate, until=duration, max_in_flight=1024
        )
        await sampler
        await checkpoints
    outcomes = soak.outcomes
    errors: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            last = o.attempts[-1]
            name = f"{o.op} {last.status or last.error}"
            errors[name] = errors.get(name, 0) + 1
    early = (warm, warm + span)
    late = (duration - span, duration)
    mem_first = statistics.mean(m for t, m in samples if early[0] <= t < early[1])
    mem_last = statistics.mean(m for t, m in samples if late[0] <= t <= late[1])
    growth = (mem_last - mem_first) / mem_first
    p99_first = loadgen.percentile(window(outcomes, *early), 0.99)
    p99_last = loadgen.percentile(window(outcomes, *late), 0.99)
    drift = (p99_last - p99_first) / p99_first if p99_first else 0.0
    error_count = sum(errors.values())
    report = Report(
        "soak",
        "Soak",
        command,
        setup=[
            "`run_system` as `taskmesh up`: nginx gateway, 2 tasks replicas, every service.",
            f"Capacity measured first: {probe_seconds:g} s closed loop at concurrency "
            f"{concurrency} (1 create : 3 list reads) -> {capacity:.0f} requests/s.",
            f"Then {minutes:g} min open loop at {rate:.0f} requests/s (half the capacity).",
            "Memory: resident set of every service process and its children (uvicorn, nginx "
            f"workers), sampled every {SAMPLE_SECONDS:g} s. Windows compared: "
            f"{early[0]:.0f}-{early[1]:.0f} s vs {late[0]:.0f}-{late[1]:.0f} s; a PostgreSQL "
            "CHECKPOINT opens each window, so both are in the same phase of its checkpoint cycle.",
        ],
    )
    report.check("errors", f"{error_count} {errors or ''}".strip(), "0", error_count == 0)
    report.check(
        "requests not started because 1,024 were already in flight (the system fell behind)",
        skipped,
        "0",
        skipped == 0,
    )
    report.check(
        "memory growth",
        f"{growth:+.1%} ({mem_first / 2**20:.0f} -> {mem_last / 2**20:.0f} MiB)",
        "<= 10%",
        growth <= 0.10,
    )
    report.check(
        "p99 drift",
        f"{drift:+.1%} ({p99_first * 1000:.0f} -> {p99_last * 1000:.0f} ms)",
        "<= 20%",
        drift <= 0.20,
    )
    steps = range(0, int(duration), 30)
    series = ", ".join(
        f"{loadgen.percentile(window(outcomes, t, t + 30), 0.99) * 1000:.0f}" for t in steps
    )
    report.notes.append(f"p99 per 30 s (ms), from the start: {series}.")
    report.notes.append(
        "CPU time the hypervisor gave to other guests (steal): "
        f"{stolen_share(steal, *early):.1%} early, {stolen_share(steal, *late):.1%} late."
    )
    report.notes.append(
        f"{len(outcomes)} requests in {duration:.0f} s, p50 "
        f"{loadgen.percentile(window(outcomes, 0, duration), 0.5) * 1000:.0f} ms; the machine "
        "is shared (other test runs), so p99 includes their noise."
    )
    return report
