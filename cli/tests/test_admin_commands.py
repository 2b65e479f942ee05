"""`taskmesh create-admin` and `rotate-keys` run the auth service's admin command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _taskmesh(*args: str, data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskmesh", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
def test_create_admin_and_rotate_keys(tmp_path: Path) -> None:
    if not (ROOT / "services" / "auth" / "src" / "taskmesh_auth" / "admin.py").exists():
        pytest.fail("the auth service has no admin module")
    created = _taskmesh(
        "create-admin",
        "--email",
        "Boss@Example.com",
        data_dir=tmp_path,
        stdin="a long passphrase 42\n",
    )
    assert created.returncode == 0, created.stderr
    assert "admin boss@example.com ready" in created.stdout
    again = _taskmesh(
        "create-admin",
        "--email",
        "boss@example.com",
        data_dir=tmp_path,
        stdin="a long passphrase 42\n",
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("(id")[1] == created.stdout.split("(id")[1]  # same account, kept
    rotated = _taskmesh("rotate-keys", "--activation-delay", "0", data_dir=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "added signing key" in rotated.stdout


def test_admin_usage_errors_pass_through(tmp_path: Path) -> None:
    result = _taskmesh("create-admin", data_dir=tmp_path)  # no --email
    assert result.returncode == 2
    assert "--email" in result.stderr
    assert "Traceback" not in result.stderr
