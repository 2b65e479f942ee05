"""The atheris fuzz targets run clean for a while, and what they found stays fixed.

Each target runs for `TASKMESH_FUZZ_SECONDS` (default 60 s, the issue's CI budget per target);
`uv run python -m fuzz --seconds 600` is a longer run by hand (docs/security/fuzzing.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from taskmesh.testing.tokens import TokenMint
from taskmesh_common.tokens import SyncTokenVerifier, TokenError, VerifierConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tokens", "events", "tasks_params"])
def test_fuzz_target_finds_no_unexpected_exception(target: str, tmp_path: Path) -> None:
    seconds = os.environ.get("TASKMESH_FUZZ_SECONDS", "60")
    result = subprocess.run(
        [sys.executable, "-m", "fuzz", "--seconds", seconds, "--artifacts", f"{tmp_path}/", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=int(seconds) + 240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert f"fuzz {target}: ok" in output
    assert "Done " in output  # libFuzzer ran and stopped on its time budget


@pytest.mark.parametrize("token", ["\udbf9/", "a.\ud800.b", "é.é.é"])
def test_tokens_that_are_not_ascii_are_refused_not_crashed(token: str) -> None:
    # Found by fuzz/tokens_target.py: a lone surrogate escaped as UnicodeEncodeError.
    mint = TokenMint()
    with httpx.Client(transport=mint.transport()) as http:
        verifier = SyncTokenVerifier(
            config=VerifierConfig(issuer=mint.issuer, audience="taskmesh-tasks"),
            jwks_url="http://auth.invalid/.well-known/jwks.json",
            http=http,
        )
        with pytest.raises(TokenError):
            verifier.verify(token)
