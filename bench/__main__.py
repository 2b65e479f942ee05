"""`uv run python -m bench`: run the benchmarks and write docs/benchmarks/."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import functools
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from taskmesh.backing import start_backing

from bench import client, datasize, events, procs, profile, report
from bench.baselines import start_baselines
from bench.runner import Load, Scenario, log_line, run_rounds
from bench.scenarios import baseline_scenarios, system_scenarios
from bench.target import ROOT, Target, attach, postgres_pids, start_system, tasks_workers

DOCS = ROOT / "docs" / "benchmarks"
WRITERS = 16  # users the create scenario spreads its requests over


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds, not minutes (CI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, help="workers per baseline (default: as tasks)")
    parser.add_argument("--out", type=Path, help=f"output directory (default {DOCS})")
    parser.add_argument("--baselines-only", action="store_true", help="no system, baselines only")
    parser.add_argument("--no-data-size", action="store_true", help="skip the 1M-task scenario")
    parser.add_argument("--no-events", action="store_true", help="skip the event-lag scenario")
    parser.add_argument("--event-rate", type=float, default=500)
    parser.add_argument("--event-duration", type=float, default=60)
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of tasks and web")
    parser.add_argument(
        "--only",
        help="comma-separated name patterns: run only matching scenarios (an A/B run), "
        "e.g. 'baseline.floor.get,tasks.get.*'",
    )
    parser.add_argument("--not-durable", action="store_true", help="PostgreSQL without fsync")
    running = parser.add_argument_group("a running system (instead of starting one)")
    for name in ("gateway", "auth", "tasks", "web", "activity"):
        running.add_argument(f"--{name}-url")
    running.add_argument("--postgres-url", help="admin URL of the system's PostgreSQL")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.duration, args.connections = 1, 1, 16
        args.event_rate, args.event_duration = 50, 3
        args.no_data_size = True
    return args


def _meta(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "git": git or "?",
        "rounds": args.rounds,
        "duration_s": args.duration,
        "connections": args.connections,
        "threads": args.threads,
        "workers": workers,
        "durable": not args.not_durable,
        "smoke": args.smoke,
    }


def _bench_database(postgres_url: str) -> str:
    """A fresh `bench` database on the system's PostgreSQL server; its URL."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier("bench"))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("bench")))
    return urlsplit(postgres_url)._replace(path="/bench").geturl()


@contextlib.contextmanager
def _system(args: argparse.Namespace, log_path: Path) -> Iterator[tuple[Target | None, str]]:
    """The system under test (or None for baselines only) and an admin PostgreSQL URL."""
    if args.baselines_only:
        with (
            tempfile.TemporaryDirectory(prefix="bench-pg-") as directory,
            start_backing(Path(directory), durable=not args.not_durable) as backing,
        ):
            yield None, backing.postgres_url
        return
    if args.tasks_url:
        names = ("gateway", "auth", "tasks", "web", "activity")
        urls = {name: getattr(args, f"{name}_url") for name in names}
        if not all(urls.values()) or not args.postgres_url:
            raise SystemExit("a running system needs every --*-url and --postgres-url")
        yield attach(urls, args.postgres_url), args.postgres_url
        return
    with start_system(log_path, durable=not args.not_durable) as target:
        yield target, target.postgres_url


def _memory_sampler(target: Target, peaks: dict[str, int], pss: dict[str, int]) -> Any:
    """Wrap mixed runs with a memory sampler that folds its peaks into `peaks` and `pss`."""

    @contextlib.contextmanager
    def around(scenario: Scenario) -> Iterator[None]:
        if ".mixed." not in scenario.name:
            yield
            return
        names = list(target.pids) or ["auth", "tasks", "activity", "web", "gateway"]
        groups = {name: target.service_pids(name) for name in names}
        with procs.RssSampler(groups) as sampler:
            yield
        for name, peak in sampler.peaks.items():
            peaks[name] = max(peaks.get(name, 0), peak)
        for name, peak in sampler.pss_peaks.items():
            pss[name] = max(pss.get(name, 0), peak)

    return around


PROFILED = {
    "tasks": (
        "tasks.get.direct",
        "tasks.create.direct",
        "tasks.list.direct",
        "tasks.search.direct",
    ),
    "web": ("web.board.direct",),
}


def _profiles(
    target: Target, scenarios: list[Scenario], load: Load, out: Path, results: dict[str, Any]
) -> None:
    """py-spy profiles of the services under their main scenarios."""
    by_name = {scenario.name: scenario for scenario in scenarios}
    for service, names in PROFILED.items():
        for name in names:
            if name in by_name and target.pids.get(service):
                log_line(f"profiling {service} under {name}")
                root = min(target.pids[service])
                summary = profile.profile(by_name[name], load, root, out)
                results.setdefault("profiles", {})[name] = summary.splitlines()[:14]


def selected(scenarios: list[Scenario], patterns: str) -> list[Scenario]:
    """The scenarios whose name matches one of the comma-separated shell-style `patterns`."""
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [s for s in scenarios if any(fnmatch.fnmatchcase(s.name, p) for p in wanted)]
    if not chosen:
        raise SystemExit(f"--only {patterns!r} matches no scenario")
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything, in order; returns the results."""
    workers = args.workers or tasks_workers()
    load = Load(duration=args.duration, connections=args.connections, threads=args.threads)
    results: dict[str, Any] = {"meta": _meta(args, workers), "notes": []}
    # 25 scenarios (+8 data-size ones) per round, a warm-up pass, start-up and seeding, events.
    runs = 25 + (0 if args.no_data_size else 8)
    seconds = runs * (args.rounds * (args.duration + 1.5) + 3.5) + 240
    seconds += 0 if args.no_data_size else 120
    seconds += 0 if args.no_events else args.event_duration + 30
    results["meta"]["expected_minutes"] = round(seconds / 60)
    log_path = Path(tempfile.mkdtemp(prefix="bench-logs-")) / "system.log"
    log_line(f"system log: {log_path}; each service's own: {log_path.parent / 'services'}/")
    with contextlib.ExitStack() as stack:
        target, postgres_url = stack.enter_context(_system(args, log_path))
        database_pids = functools.partial(postgres_pids, postgres_url)
        if target is None:
            results["meta"]["system"] = "baselines only"
        bench_db = _bench_database(postgres_url)
        apps = stack.enter_context(start_baselines(bench_db, workers, rows=1000))
        scenarios = baseline_scenarios(apps, database_pids)
        size: dict[str, Any] = {}
        peaks: dict[str, int] = {}
        pss: dict[str, int] = {}
        small_user = None
        if target is not None:
            results["meta"]["system"] = ", ".join(f"{k} {v}" for k, v in target.urls.items())
            tasks = target.urls["tasks"]
            log_line("seeding: users and tasks through the API")
            reader = client.register(target.urls["auth"], "reader")
            client.seed_tasks(tasks, reader, 1000)
            reader.cookie = client.web_cookie(target.urls["web"], reader)
            writer = client.register(target.urls["auth"], "writer")
            client.seed_tasks(tasks, writer, 1000)
            writers = tuple(
                client.register(target.urls["auth"], f"writer{n}") for n in range(1, WRITERS)
            )
            if not args.no_data_size:
                small_user = client.register(target.urls["auth"], "size")
                client.seed_tasks(tasks, small_user, 1000)
                log_line("data size: 1,000 tasks")
                small = datasize.size_scenarios(target, small_user, "small")
                size |= run_rounds(small, load, args.rounds)
            scenarios += system_scenarios(target, reader, writer, writers=writers)
        if args.only:
            scenarios = selected(scenarios, args.only)
        around = _memory_sampler(target, peaks, pss) if target else None
        results["scenarios"] = run_rounds(scenarios, load, args.rounds, around=around)
        results["memory_peak_rss_bytes"] = peaks
        results["memory_peak_pss_total_bytes"] = pss
        if target is not None and args.profile:
            _profiles(target, scenarios, load, (args.out or DOCS) / "profiles", results)
        if target is not None and small_user is not None:
            tasks_db = target.database_url("taskmesh_tasks")
            log_line("data size: seeding 999,000 more tasks with SQL")
            total = datasize.bulk_seed(tasks_db)
            log_line(f"data size: {total:,} tasks")
            large = datasize.size_scenarios(target, small_user, "large")
            size |= run_rounds(large, load, args.rounds)
            size["description"] = (
                "One user's 1,000 tasks queried with 1,000 tasks in the table (`.small`) and "
                f"again with {total:,} tasks across {datasize.BULK_OWNERS + 1:,}+ users "
                f"(`.large`). `list_deep` opens page {datasize.DEEP_PAGE} through its cursor."
            )
            try:
                key = datasize.deep_key(tasks_db, small_user.id)
                plans = datasize.query_plans(tasks_db, small_user.id, key)
            except Exception as exc:  # a by-product: say so loudly, but keep the run's figures
                log_line(f"query plans not written: {exc!r}")
                results["plans_error"] = repr(exc)
            else:
                out = args.out or DOCS
                out.mkdir(parents=True, exist_ok=True)
                (out / "plans.md").write_text(
                    f"# Query plans at {total:,} tasks\n\nEXPLAIN (ANALYZE, BUFFERS) of the "
                    "exact statements `taskmesh_tasks.repository` builds, for one user with "
                    "1,000 tasks.\n\n" + plans
                )
        results["data_size"] = size
        if target is not None and not args.no_events:
            log_line(f"events: {args.event_rate:.0f} writes/s for {args.event_duration:.0f} s")
            warmup = client.register(target.urls["auth"], "warmup")
            event_user = client.register(target.urls["auth"], "events")
            results["events"] = events.measure_lag(
                target, warmup, event_user, rate=args.event_rate, duration=args.event_duration
            )
    return results


def main(argv: list[str] | None = None) -> int:
    """Run and write the results; exit 0 (targets are reported, not asserted)."""
    args = parse(argv)
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else DOCS)
    args.out = out
    results = run(args)
    try:
        report.write(results, out)
    except (ImportError, OSError) as error:
        # Seen when a concurrent `uv sync` without the bench group removed matplotlib mid-run.
        log_line(f"could not draw the chart ({error}); results.json and README.md are written.")
        log_line(f"redraw: uv run --group bench python -m bench.report {out}")
        return 1
    log_line(f"wrote {out / 'README.md'}, results.json and chart.png")
    for row in results["targets"]:
        if row["met"] is False:
            log_line(f"missed: {row['label']}: {row['value']} (bound {row['bound']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
