"""`python -m reliability <suite> [--quick]`: run one suite, write docs/reliability/<suite>.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from reliability import database, network, redis_outage, replicas, soak
from reliability.harness import Harness, start
from reliability.report import Report

Suite = Callable[[Harness, argparse.Namespace, str], Coroutine[Any, Any, Report]]


async def _replica_crash(h: Harness, args: argparse.Namespace, command: str) -> Report:
    total = args.creates or (3000 if args.quick else 20_000)
    period = args.period or (4.0 if args.quick else 10.0)
    return await replicas.suite(h, total=total, period=period, command=command)


async def _database_crash(h: Harness, args: argparse.Namespace, command: str) -> Report:
    if args.quick:
        return await database.suite(h, command=command, duration=40.0, crashes=2)
    return await database.suite(h, command=command)


async def _redis_outage(h: Harness, args: argparse.Namespace, command: str) -> Report:
    return await redis_outage.suite(h, command=command, outage=8.0 if args.quick else 30.0)


async def _network(h: Harness, args: argparse.Namespace, command: str) -> Report:
    return await network.suite(h, command=command, seconds=8.0 if args.quick else 20.0)


async def _soak(h: Harness, args: argparse.Namespace, command: str) -> Report:
    minutes = args.minutes or (1.0 if args.quick else 5.0)
    return await soak.suite(h, command=command, minutes=minutes)


def _sizes(args: argparse.Namespace) -> dict[str, float]:
    """The size options given (they change the run); paths do not."""
    given = {"creates": args.creates, "period": args.period, "minutes": args.minutes}
    return {name: value for name, value in given.items() if value is not None}


SUITES: dict[str, Suite] = {
    "replica-crash": _replica_crash,
    "database-crash": _database_crash,
    "redis-outage": _redis_outage,
    "network-faults": _network,
    "soak": _soak,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--creates", type=int, help="replica-crash: creates per run")
    parser.add_argument("--period", type=float, help="replica-crash: seconds between restarts")
    parser.add_argument("--minutes", type=float, help="soak: duration in minutes (default 5)")
    parser.add_argument("--work-dir", help="keep the system's data and logs here")
    parser.add_argument("--report", help="write the report here instead of docs/reliability/")
    args = parser.parse_args(argv)
    if args.suite == "network-faults" and not network.in_own_namespace():
        return network.reexec(argv)
    shown = [args.suite] + (["--quick"] if args.quick else [])
    shown += [f"--{name} {value:g}" for name, value in _sizes(args).items()]
    command = "uv run python -m reliability " + " ".join(shown)
    with start(Path(args.work_dir) if args.work_dir else None) as harness:
        report = asyncio.run(SUITES[args.suite](harness, args, command))
    path = report.write(Path(args.report) if args.report else None)
    print(report.markdown())
    print(f"written to {path}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
