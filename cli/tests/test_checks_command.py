"""`taskmesh test` fails on any failing gate and when no test ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from taskmesh.checks import run_checks, source_dirs, suite_dirs

PYPROJECT = """
[project]
name = "mini"
version = "0"

[tool.mypy]
strict = true
"""


def _mini_workspace(root: Path, test_body: str | None) -> Path:
    (root / "libs" / "mini" / "src" / "mini").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "libs" / "mini" / "src" / "mini" / "__init__.py").write_text(
        '"""Mini."""\n\n\ndef double(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'
    )
    tests = root / "libs" / "mini" / "tests"
    tests.mkdir()
    if test_body is not None:
        (tests / "test_mini_double.py").write_text(test_body)
    return root


PASSING = "def test_double() -> None:\n    assert 2 + 2 == 4\n"
FAILING = "def test_double() -> None:\n    assert 2 + 2 == 5\n"


def test_directories_are_discovered(tmp_path: Path) -> None:
    root = _mini_workspace(tmp_path, PASSING)
    assert source_dirs(root) == ["libs/mini/src"]
    assert suite_dirs(root) == ["libs/mini/tests"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "expected"),
    [(PASSING, 0), (FAILING, 1), (None, 1), (PASSING.replace("None:", "None :  "), 1)],
    ids=["passing", "failing-test", "no-tests", "badly-formatted"],
)
def test_exit_status(tmp_path: Path, body: str | None, expected: int) -> None:
    assert (
        run_checks(root=_mini_workspace(tmp_path, body), pytest_args=["-p", "no:cacheprovider"])
        == expected
    )
