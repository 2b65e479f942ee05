"""The harness end to end in smoke mode against its own baselines, and its target arithmetic."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from taskmesh import gateway
from taskmesh.testing.programs import require_program

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `bench` is a top-level directory of the workspace, not a package

from bench import datasize, report  # noqa: E402
from bench.__main__ import selected  # noqa: E402
from bench.runner import Scenario  # noqa: E402


def test_target_verdicts_follow_the_ratios() -> None:
    figures = {"rps": 0.0, "p50_ms": 1.0, "p99_ms": 1.0, "errors": 0}
    scenarios = {
        "baseline.floor.get": figures | {"rps": 1000.0},
        "tasks.get.direct": figures | {"rps": 800.0},
        "tasks.get.gateway": figures | {"rps": 600.0, "p99_ms": 80.0, "errors": 2},
    }
    rows = {row["key"]: row for row in report.evaluate({"scenarios": scenarios})}
    assert rows["get_vs_floor"]["value"] == pytest.approx(0.8)
    assert rows["get_vs_floor"]["met"] is True
    assert rows["get_gateway_vs_direct"]["value"] == pytest.approx(0.75)
    assert rows["get_gateway_vs_direct"]["met"] is False
    assert rows["tasks.get.gateway_p99"]["met"] is False
    assert rows["tasks.get.gateway_errors"]["met"] is False
    assert rows["tasks.get.direct_errors"]["met"] is True
    assert rows["get_vs_peer"]["met"] is None  # not measured in this run


def test_query_plans_capture_the_repository_statements() -> None:
    # The capture stands in for the pool; when it fell behind Repository (the FIFO gate asks the
    # pool its size) plans.md silently stopped being written.
    key = ("2026-12-02 10:00:00+00", 700)
    statements = asyncio.run(datasize._statements(uuid.uuid4(), key))
    assert [title for title, _, _ in statements] == [
        "get one",
        "list a page of 50, status=todo",
        f"list page {datasize.DEEP_PAGE} via cursor",
        "search q=bravo",
    ]
    assert all("FROM tasks t" in sql for _, sql, _ in statements)


def test_only_keeps_the_scenarios_its_patterns_match() -> None:
    names = ["baseline.floor.get", "baseline.floor.create", "tasks.get.direct", "tasks.get.gateway"]
    scenarios = [
        Scenario(name, "http://127.0.0.1:1/", str, set, set, name.split(".")[-1]) for name in names
    ]

    chosen = selected(scenarios, "baseline.floor.get, tasks.get.*")

    assert [s.name for s in chosen] == [
        "baseline.floor.get",
        "tasks.get.direct",
        "tasks.get.gateway",
    ]
    with pytest.raises(SystemExit, match="matches no scenario"):
        selected(scenarios, "web.*")


@pytest.mark.slow
def test_smoke_run_measures_every_baseline(tmp_path: Path) -> None:
    require_program("wrk")
    require_program("nginx", finder=gateway.find_nginx)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--baselines-only", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    expected = {
        "baseline.ceiling.static",
        *(
            f"baseline.{app}.{op}"
            for app in ("floor", "peer", "origin")
            for op in ("get", "create")
        ),
        "baseline.peer.list",
        "baseline.peer.search",
    }
    assert set(results["scenarios"]) == expected
    for name, figures in results["scenarios"].items():
        assert figures["requests"] > 0, name
        assert figures["errors"] == 0, name
        assert figures["server_cpu_us_per_request"] > 0, name
    assert (tmp_path / "chart.png").stat().st_size > 0
    readme = (tmp_path / "README.md").read_text()
    assert "| baseline.floor.get |" in readme


@pytest.mark.slow
@pytest.mark.e2e
def test_smoke_run_against_the_whole_system(tmp_path: Path) -> None:
    require_program("wrk")
    require_program("nginx", finder=gateway.find_nginx)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for op in ("get", "list", "search", "create", "update", "mixed"):
        for route in ("direct", "gateway"):
            figures = results["scenarios"][f"tasks.{op}.{route}"]
            assert figures["requests"] > 0, (op, route)
            # Wrong answers are bugs; socket timeouts on a loaded CI machine are not asserted.
            assert sum(r["non2xx"] for r in figures["rounds"]) == 0, (op, route)
    assert results["scenarios"]["web.board.gateway"]["requests"] > 0
    assert results["events"]["delivered"] == results["events"]["writes"] > 0
    assert set(results["memory_peak_rss_bytes"]) >= {"auth", "tasks", "activity", "web"}
    verdicts = {row["key"]: row["met"] for row in results["targets"]}
    assert verdicts["get_vs_floor"] is not None  # every ratio was computed, met or not
