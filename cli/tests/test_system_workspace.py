"""The real workspace comes up the way `taskmesh up` runs it, and keeps its data between runs."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import httpx
import pytest
from taskmesh.printer import LogPrinter
from taskmesh.system import run_system

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_workspace_comes_up_and_keeps_data(tmp_path: Path) -> None:
    email = f"keeper-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    log = io.StringIO()
    with run_system(tmp_path, root=ROOT, ports="free", printer=LogPrinter(log)) as system:
        assert {"auth", "tasks", "activity", "web"} <= set(system.urls), log.getvalue()[-2000:]
        for name, url in system.urls.items():
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200, name
        assert httpx.get(system.public_url, follow_redirects=True, timeout=5).status_code == 200
        created = httpx.post(
            f"{system.urls['auth']}/v1/users",
            json={"email": email, "display_name": "Keeper", "password": password},
            timeout=10,
        )
        assert created.status_code == 201, created.text
    with run_system(tmp_path, root=ROOT, ports="free", printer=LogPrinter(log)) as system:
        session = httpx.post(
            f"{system.urls['auth']}/v1/sessions",
            json={"email": email, "password": password},
            timeout=10,
        )
        assert session.status_code == 200, session.text
