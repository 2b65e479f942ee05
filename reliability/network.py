"""Suite 4: network faults inside a network namespace of the suite's own.

`python -m reliability network` re-runs itself under `unshare --net`, so the whole system (and
every iptables rule) lives in a private loopback that nothing else on the machine uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from reliability import harness as h
from reliability import load as loadgen
from reliability.load import Attempt, Load, Outcome, Worker
from reliability.report import Report

MARK = "RELIABILITY_NETNS"


def in_own_namespace() -> bool:
    """Whether this process runs in the namespace `reexec` made."""
    return os.environ.get(MARK) == str(os.getpid())


def reexec(argv: list[str]) -> int:
    """Run `python -m reliability <argv>` in a fresh network namespace; return its exit code."""
    script = f'ip link set lo up && {MARK}=$$ exec "$0" -m reliability "$@"'
    command = ["unshare", "--net", "--", "sh", "-c", script, sys.executable, *argv]
    return subprocess.run(command, check=False).returncode


def iptables(*rule: str) -> None:
    """Apply one iptables rule in this (private) namespace."""
    subprocess.run(["iptables", *rule], check=True)


@contextmanager
def fault(*rules: list[str]) -> Iterator[None]:
    """Rules appended to INPUT for the duration of the block (loopback traffic passes INPUT)."""
    for rule in rules:
        iptables("-A", "INPUT", *rule)
    try:
        yield
    finally:
        iptables("-F", "INPUT")


def port_rules(port: int, *target: str) -> list[list[str]]:
    """The same target for both directions of every connection to `port`."""
    return [
        ["-p", "tcp", "--dport", str(port), *target],
        ["-p", "tcp", "--sport", str(port), *target],
    ]


RATE = 80.0  # requests/s over 8 workers: well under the gateway's 50/s per client address
WORKERS = 8


async def phase(load: Load, seconds: float, prefix: str) -> list[Outcome]:
    """Creates and reads at a steady `RATE` for `seconds`; the outcomes of this phase."""
    before = len(load.outcomes)

    async def mixed(worker: Worker, index: int) -> Outcome:
        if index % 2:
            return await load.read(worker)
        return await load.create(worker, f"{prefix}-{index}")

    await loadgen.open_loop(load, mixed, rate=RATE, until=load.now() + seconds)
    return load.outcomes[before:]


def latencies(outcomes: list[Outcome]) -> list[float]:
    return [a.seconds for o in outcomes for a in o.attempts]


def unexplained(outcomes: list[Outcome]) -> list[Attempt]:
    """Server errors without a problem+json body, and requests without any answer."""
    return [
        a
        for o in outcomes
        for a in o.attempts
        if a.status is None or (a.status >= 500 and not a.problem)
    ]


def statuses(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        for a in o.attempts:
            name = str(a.status) if a.status is not None else a.error
            counts[name] = counts.get(name, 0) + 1
    return counts


async def suite(
    harness: h.Harness, *, command: str, seconds: float = 20.0, loss: float = 0.1
) -> Report:
    """Baseline, Redis blackholed (DROP), Redis refused (REJECT), lossy PostgreSQL link."""
    redis_port = urlsplit(harness.system.backing.redis_url).port
    pg_port = urlsplit(harness.system.backing.postgres_url).port
    assert redis_port is not None
    assert pg_port is not None
    prefix = h.unique("net")
    report = Report(
        "network-faults",
        "Network faults",
        command,
        setup=[
            "The whole system runs inside a network namespace of the suite's own "
            "(`unshare --net`, loopback only), so iptables rules touch nothing else.",
            f"Each phase: {seconds:g} s of creates and list reads, {RATE:g} requests/s over "
            f"{WORKERS} clients (open loop, no retries).",
            "Extra latency = a request's latency minus the baseline median.",
        ],
    )
    async with loadgen.workers(harness.url, WORKERS, subnet=50) as made:
        load = Load(made)
        await phase(load, 3, f"{prefix}-warm")
        base = await phase(load, seconds, f"{prefix}-base")
        median = loadgen.percentile(latencies(base), 0.5)
        results = {}
        for name, target in {
            "DROP": ["-j", "DROP"],
            "REJECT": ["-j", "REJECT", "--reject-with", "tcp-reset"],
        }.items():
            with fault(*port_rules(redis_port, *target)):
                results[name] = await phase(load, seconds, f"{prefix}-{name}")
        with fault(
            *port_rules(
                pg_port,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                str(loss),
                "-j",
                "DROP",
            )
        ):
            lossy = await phase(load, seconds, f"{prefix}-lossy")
    report.notes.append(
        f"Baseline: {len(base)} requests, median {median * 1000:.0f} ms, "
        f"p99 {loadgen.percentile(latencies(base), 0.99) * 1000:.0f} ms, statuses {statuses(base)}."
    )
    for name, outcomes in results.items():
        times = latencies(outcomes)
        worst = max(times, default=0.0) - median
        p99 = loadgen.percentile(times, 0.99) - median
        failed = sum(1 for o in outcomes if not o.ok)
        report.check(
            f"Redis blackholed ({name}): extra latency per request",
            f"max {worst * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            "<= 250 ms",
            worst <= 0.25,
        )
        report.check(f"Redis blackholed ({name}): failed requests", failed, "0", failed == 0)
        report.notes.append(
            f"Redis {name}: {len(outcomes)} requests, statuses {statuses(outcomes)}."
        )
    bad = unexplained(lossy)
    report.check(
        f"PostgreSQL link losing {loss:.0%} of packets: 5xx without problem+json (or no answer)",
        len(bad),
        "0",
        not bad,
    )
    times = latencies(lossy)
    report.notes.append(
        f"Lossy PostgreSQL link: {len(lossy)} requests, statuses {statuses(lossy)}, "
        f"p50 {loadgen.percentile(times, 0.5) * 1000:.0f} ms, "
        f"p99 {loadgen.percentile(times, 0.99) * 1000:.0f} ms."
    )
    return report
