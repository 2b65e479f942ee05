"""Targets, ratios and the written results: results.json, README.md and a PNG chart."""

from __future__ import annotations

import json
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1024 * 1024
GATEWAY_PAIRS = ("get", "list", "search", "create", "update", "mixed")


@dataclass(frozen=True)
class Target:
    """A ratio or figure with its bound."""

    key: str
    label: str
    bound: float
    at_least: bool  # True: value >= bound; False: value <= bound

    def check(self, value: float | None) -> bool | None:
        """Met, missed, or None when not measured."""
        if value is None:
            return None
        compare: Callable[[float, float], bool] = operator.ge if self.at_least else operator.le
        return compare(value, self.bound)


def _rps(scenarios: dict[str, Any], name: str) -> float | None:
    found = scenarios.get(name)
    return float(found["rps"]) if found else None


def _cpu(scenarios: dict[str, Any], name: str) -> float | None:
    found = scenarios.get(name)
    return float(found["server_cpu_us_per_request"]) if found else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 9 with its value from this run and whether it is met."""
    s = results.get("scenarios", {})
    rows: list[tuple[Target, float | None]] = []

    def add(key: str, label: str, value: float | None, bound: float, at_least: bool = True) -> None:
        rows.append((Target(key, label, bound, at_least), value))

    for op, floor, verb in (("get", "get", "get-one"), ("create", "create", "create")):
        mine = _rps(s, f"tasks.{op}.direct")
        floor_bound, peer_bound, origin_bound = (0.7, 2, 1.25) if op == "get" else (0.6, 2, 1.4)
        add(
            f"{op}_vs_floor",
            f"{verb} / Starlette+asyncpg floor",
            _ratio(mine, _rps(s, f"baseline.floor.{floor}")),
            floor_bound,
        )
        add(
            f"{op}_vs_peer",
            f"{verb} / peer FastAPI+ORM",
            _ratio(mine, _rps(s, f"baseline.peer.{floor}")),
            peer_bound,
        )
        add(
            f"{op}_vs_origin",
            f"{verb} / origin Flask+gunicorn",
            _ratio(mine, _rps(s, f"baseline.origin.{floor}")),
            origin_bound,
        )
    for op in ("list", "search"):
        add(
            f"{op}_vs_peer",
            f"{op} / peer FastAPI+ORM",
            _ratio(_rps(s, f"tasks.{op}.direct"), _rps(s, f"baseline.peer.{op}")),
            2,
        )
    for op in GATEWAY_PAIRS:
        add(
            f"{op}_gateway_vs_direct",
            f"{op} via gateway / direct",
            _ratio(_rps(s, f"tasks.{op}.gateway"), _rps(s, f"tasks.{op}.direct")),
            0.85,
        )
    add(
        "board_gateway_vs_direct",
        "web board via gateway / direct",
        _ratio(_rps(s, "web.board.gateway"), _rps(s, "web.board.direct")),
        0.85,
    )
    for name, figures in s.items():
        if name.endswith(".gateway"):
            add(f"{name}_p99", f"p99 {name} (ms)", figures["p99_ms"], 50, at_least=False)
    for name, figures in s.items():
        add(f"{name}_errors", f"errors {name}", figures["errors"], 0, at_least=False)
    size = results.get("data_size", {})
    for op in ("get", "list", "list_deep", "search"):
        small, large = size.get(f"{op}.small"), size.get(f"{op}.large")
        value = large["p50_ms"] / small["p50_ms"] if small and large and small["p50_ms"] else None
        add(f"datasize_{op}", f"{op} p50 at 1M / at 1k tasks", value, 1.5, at_least=False)
    events = results.get("events")
    if events:
        add(
            "event_lag_p99",
            f"event lag p99 at {events.get('achieved_rate', 0):.0f} writes/s (s)",
            events.get("lag_p99_s"),
            1.0,
            at_least=False,
        )
    for service, peak in results.get("memory_peak_rss_bytes", {}).items():
        add(
            f"rss_{service}",
            f"peak RSS of a {service} process in mixed run (MB)",
            peak / MB,
            150,
            at_least=False,
        )
    return [
        {
            "key": target.key,
            "label": target.label,
            "value": value,
            "bound": target.bound,
            "at_least": target.at_least,
            "met": target.check(value),
        }
        for target, value in rows
    ]  # fmt: skip


def informational(results: dict[str, Any]) -> dict[str, float | None]:
    """Context ratios (not targets): how the baselines compare with each other."""
    s = results.get("scenarios", {})
    pairs = {
        "floor_get_vs_ceiling": ("floor.get", "ceiling.static"),
        "peer_get_vs_floor": ("peer.get", "floor.get"),
        "origin_get_vs_floor": ("origin.get", "floor.get"),
        "peer_create_vs_floor": ("peer.create", "floor.create"),
        "origin_create_vs_floor": ("origin.create", "floor.create"),
    }
    ratios = {
        key: _ratio(_rps(s, f"baseline.{a}"), _rps(s, f"baseline.{b}"))
        for key, (a, b) in pairs.items()
    }
    # CPU per request is steadier than throughput on a shared machine: baseline CPU / ours,
    # so above 1 means the service spends less CPU per request than that baseline.
    for op in ("get", "create"):
        for app in ("floor", "peer", "origin"):
            ratios[f"cpu_{op}_{app}_over_tasks"] = _ratio(
                _cpu(s, f"baseline.{app}.{op}"), _cpu(s, f"tasks.{op}.direct")
            )
    for op in ("list", "search"):
        ratios[f"cpu_{op}_peer_over_tasks"] = _ratio(
            _cpu(s, f"baseline.peer.{op}"), _cpu(s, f"tasks.{op}.direct")
        )
    return ratios


METHOD = [
    "## Method",
    "",
    "- **Baselines** (`bench/baselines/`, each with its own table in a `bench` database on the "
    "system's PostgreSQL server, same worker count as the tasks service): `ceiling` nginx serving "
    "a static JSON file; `floor` bare Starlette + uvicorn + asyncpg (pool of 4 per worker) doing a "
    "single-row lookup by primary key and an insert; `peer` FastAPI + SQLAlchemy 2 async ORM "
    "session per request + Pydantic response models (how the popular FastAPI templates do it) "
    "doing the lookup, insert, a filtered page of 50 and a full-text search; `origin` Flask + "
    "gunicorn sync workers + psycopg doing the lookup and insert.",
    "- **System**: started by `taskmesh.system.run_system` on free ports (fresh data directory), "
    "plus the project's own gateway configuration (`taskmesh.gateway`) with its rate limits "
    "raised for the load test. Users register and log in through auth; the board uses a real "
    "web session cookie. `direct` hits the service port; `gateway` goes through nginx.",
    "- **Scenarios** (wrk Lua scripts in `bench/wrk.py`): `get` cycles over 1,000 task numbers; "
    "`list` is `status=todo&limit=50`; `search` is `q=bravo&limit=50` (a tenth of tasks match); "
    "`create` sends a fresh `Idempotency-Key` per request, spread over 16 users (one user's "
    "creates take turns on that user's task-number counter, a row lock held until the commit "
    "is on disk; `create_one_user` is the same load from a single user); `update` PATCHes with "
    "`If-Match`, "
    "learning each new version from the response; `mixed` is 60% get, 20% list, 20% create; "
    "`web.board` is the signed-in board page.",
    "- **Rounds** are interleaved (every scenario once per round), so a noisy minute hurts every "
    "scenario alike; figures are medians over rounds.",
    "",
]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def markdown(results: dict[str, Any]) -> str:
    """The README of docs/benchmarks."""
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        "Reproduce with `uv run python -m bench` (about "
        f"{meta.get('expected_minutes', '?')} minutes; `--smoke` runs in seconds). "
        "Every figure is the median of the rounds of one run; every target is a ratio against "
        "a baseline measured in the same run, because the machines are shared and noisy. "
        "Raw figures: [results.json](results.json).",
        "",
        "![throughput and latency per scenario](chart.png)",
        "",
        "## Run",
        "",
        f"- date: {meta['date']}; machine: {meta['cpu']} ({meta['cores']} cores); "
        f"git {meta.get('git', '?')}",
        f"- wrk -t{meta['threads']} -c{meta['connections']} -d{meta['duration_s']:g}s, "
        f"{meta['rounds']} rounds (interleaved), workers per app: {meta['workers']}",
        f"- PostgreSQL durable: {meta.get('durable')}; system: {meta.get('system', '-')}",
        "",
        *METHOD,
        "## Targets",
        "",
        "| target | value | bound | verdict |",
        "|---|---:|---:|---|",
    ]
    for row in results["targets"]:
        bound = ("\u2265 " if row["at_least"] else "\u2264 ") + _fmt(row["bound"])
        lines.append(
            f"| {row['label']} | {_fmt(row['value'])} | {bound} | {_verdict(row['met'])} |"
        )
    lines += [
        "",
        "## Scenarios",
        "",
        "CPU is user+system time of the serving processes (and of PostgreSQL) from "
        "`/proc/<pid>/stat`, divided by the requests served. Errors are non-2xx answers plus "
        "socket errors, over all rounds.",
        "",
        "| scenario | rps | p50 ms | p99 ms | errors | server CPU us/req | PostgreSQL CPU us/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in results.get("scenarios", {}).items():
        lines.append(
            f"| {name} | {_fmt(f['rps'], 0)} | {_fmt(f['p50_ms'])} | {_fmt(f['p99_ms'])} | "
            f"{f['errors']} | {_fmt(f['server_cpu_us_per_request'], 0)} | "
            f"{_fmt(f['database_cpu_us_per_request'], 0)} |"
        )
    info = informational(results)
    lines += [
        "",
        "Context (not targets; `cpu_X_Y_over_tasks` is baseline Y's server CPU per request "
        "divided by the tasks service's, so above 1 means tasks spends less): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in info.items()),
    ]
    if results.get("memory_peak_rss_bytes"):
        lines += [
            "",
            "## Memory during the mixed runs",
            "",
            "Peak RSS of the largest process of each service, and peak PSS of all its "
            "processes summed (shared pages split among the processes sharing them, so a "
            "multi-process service is not counted twice).",
            "",
            "| process | peak RSS MB (largest process) | peak PSS MB (all processes) |",
            "|---|---:|---:|",
        ]
        pss = results.get("memory_peak_pss_total_bytes", {})
        for service, peak in results["memory_peak_rss_bytes"].items():
            total = pss.get(service)
            lines.append(
                f"| {service} | {_fmt(peak / MB, 1)} | {_fmt(total / MB if total else None, 1)} |"
            )
    size = results.get("data_size")
    if size:
        lines += [
            "",
            "## Data size",
            "",
            f"{size.get('description', '')}",
            "",
            "| scenario | rps | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, f in size.items():
            if isinstance(f, dict):
                lines.append(
                    f"| {name} | {_fmt(f['rps'], 0)} | {_fmt(f['p50_ms'])} | {_fmt(f['p99_ms'])} | "
                    f"{f['errors']} |"
                )
        lines += ["", "Query plans (EXPLAIN ANALYZE at 1,000,000 tasks): [plans.md](plans.md)"]
    events = results.get("events")
    if events:
        lines += [
            "",
            "## Events",
            "",
            f"{events['writes']} creates in {events['duration_s']:.0f} s "
            f"({events['achieved_rate']:.0f} writes/s, {events['errors']} errors); "
            "outbox-to-feed lag (activity `recorded_at` - event `occurred_at`) "
            f"p50 {_fmt(events.get('lag_p50_s'), 3)} s, "
            f"p99 {_fmt(events.get('lag_p99_s'), 3)} s, max {_fmt(events.get('lag_max_s'), 3)} s; "
            f"{events.get('delivered', 0)} of {events['writes']} delivered. The first hop alone "
            "(event `occurred_at` to the time in its stream entry id, i.e. onto the Redis stream): "
            f"p50 {_fmt(events.get('relay_lag_p50_s'), 3)} s, "
            f"p99 {_fmt(events.get('relay_lag_p99_s'), 3)} s.",
        ]
    profiles = results.get("profiles")
    if profiles:
        lines += [
            "",
            "## Profiles",
            "",
            "py-spy (250 Hz) while wrk drives each scenario; top self-time "
            "functions below, fuller summaries in [profiles/](profiles/).",
            "",
        ]
        for name, summary in profiles.items():
            lines += [f"### {name}", "", "```", *summary, "```", ""]
    notes = results.get("notes")
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput and p50/p99 latency per scenario, one bar each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results.get("scenarios", {})
    names = list(scenarios)
    colours = [
        "#888888" if n.startswith("baseline") else "#1f77b4" if n.endswith("direct") else "#ff7f0e"
        for n in names
    ]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 9), sharex=True)
    top.bar(names, [scenarios[n]["rps"] for n in names], color=colours)
    top.set_yscale("log")
    top.set_ylabel("requests/s (log)")
    top.set_title("Throughput (grey: baselines, blue: direct, orange: through the gateway)")
    x = range(len(names))
    bottom.bar([i - 0.2 for i in x], [scenarios[n]["p50_ms"] for n in names], 0.4, label="p50")
    bottom.bar([i + 0.2 for i in x], [scenarios[n]["p99_ms"] for n in names], 0.4, label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency ms (log)")
    bottom.legend()
    bottom.set_xticks(list(x), names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], directory: Path) -> None:
    """results.json, README.md and chart.png in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    results["targets"] = evaluate(results)
    results["informational"] = informational(results)
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = markdown(results)
    if (directory / "analysis.md").exists():
        # The hand-written reading of the latest run: why each missed target is missed.
        text = text.replace(
            "## Targets\n",
            "## Targets\n\nWhy the missed ones are missed, with profiles, and what would fix them: "
            "[analysis.md](analysis.md).\n",
            1,
        )
    (directory / "README.md").write_text(text)
    if results.get("scenarios"):
        chart(results, directory / "chart.png")


def main(argv: list[str] | None = None) -> int:
    """Re-render README.md and chart.png from a directory's results.json."""
    directory = Path((argv if argv is not None else sys.argv[1:])[0])
    write(json.loads((directory / "results.json").read_text()), directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
