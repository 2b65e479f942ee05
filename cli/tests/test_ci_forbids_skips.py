"""Under CI=true a skipped test fails the run; elsewhere it is a plain skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = """
import pytest

def test_needs_a_program():
    pytest.skip("frobnicator is not installed")

@pytest.mark.xfail(strict=True)
def test_known_bug():
    assert False

def test_fine():
    pass
"""


@pytest.mark.parametrize(("ci", "code"), [("true", 1), ("false", 0)])
def test_skips_fail_only_under_ci(tmp_path: Path, ci: str, code: int) -> None:
    (tmp_path / "test_ci_demo_suite.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == code, result.stdout
    if code:
        assert "this one was skipped: Skipped: frobnicator is not installed" in result.stdout
        assert "1 failed, 1 passed, 1 xfailed" in result.stdout
