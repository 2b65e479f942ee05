"""Every test named in docs/security/owasp-api-top10.md exists, is collected, is not skipped."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "docs" / "security" / "owasp-api-top10.md"
HEADING = re.compile(r"^## (API(\d+)) ")
NODE = re.compile(r"^- `([^`]+::[A-Za-z_][A-Za-z0-9_]*)`")
SKIPPING = {"skip", "xfail"}


def traceability() -> dict[str, list[str]]:
    """Risk (API1..API10) -> the node ids listed under it."""
    risks: dict[str, list[str]] = {}
    current = None
    for line in TRACE.read_text().splitlines():
        if heading := HEADING.match(line):
            current = heading.group(1)
            risks[current] = []
        elif (node := NODE.match(line)) and current:
            risks[current].append(node.group(1))
    return risks


def _skipping_marks(decorators: list[ast.expr]) -> list[str]:
    """Unconditional skip/xfail marks among decorators (skipif fails under CI=true anyway)."""
    found = []
    for decorator in decorators:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in SKIPPING:
            found.append(target.attr)
    return found


def skipped(node_id: str) -> list[str]:
    """Why the test would not run: unconditional skip/xfail on it or on its module."""
    path, name = node_id.split("::")
    tree = ast.parse((ROOT / path).read_text())
    reasons = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets
        ):
            marks = (
                statement.value.elts if isinstance(statement.value, ast.List) else [statement.value]
            )
            reasons += [f"module {mark}" for mark in _skipping_marks(list(marks))]
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and (
            statement.name == name
        ):
            reasons += _skipping_marks(statement.decorator_list)
    return reasons


def test_every_risk_has_enough_tests() -> None:
    risks = traceability()
    assert sorted(risks, key=lambda r: int(r[3:])) == [f"API{n}" for n in range(1, 11)]
    for risk, nodes in risks.items():
        assert len(nodes) >= (2 if int(risk[3:]) <= 5 else 1), risk
        assert len(set(nodes)) == len(nodes), f"{risk} lists a test twice"


def test_every_listed_test_is_collected_and_not_skipped() -> None:
    nodes = sorted({node for listed in traceability().values() for node in listed})
    files = sorted({node.split("::")[0] for node in nodes})
    missing_files = [path for path in files if not (ROOT / path).is_file()]
    assert not missing_files, missing_files
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout[-5000:] + collected.stderr[-3000:]
    ids = {line.split("[", 1)[0] for line in collected.stdout.splitlines() if "::" in line}
    assert not [node for node in nodes if node not in ids], (
        [node for node in nodes if node not in ids],
        collected.stdout[-3000:],
    )
    marked = {node: reasons for node in nodes if (reasons := skipped(node))}
    assert not marked, marked
