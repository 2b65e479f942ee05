"""The session fixtures give real, working servers."""

from __future__ import annotations

import os
from collections.abc import Callable

import psycopg
import pytest
import valkey
from taskmesh.backing import Backing
from taskmesh.testing.tokens import TokenMint


def test_create_database_gives_a_fresh_database(create_database: Callable[[str], str]) -> None:
    url = create_database("test_cli_fixture")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (id int)")
    url_again = create_database("test_cli_fixture")
    assert url_again == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('marker')").fetchone() == (None,)


def test_redis_databases_are_separate(backing: Backing) -> None:
    first = valkey.Valkey.from_url(backing.redis_url_for(14))
    second = valkey.Valkey.from_url(backing.redis_url_for(15))
    try:
        first.flushdb()
        second.flushdb()
        first.set("key", "one")
        assert second.get("key") is None
        assert first.get("key") == b"one"
    finally:
        first.flushdb()
        first.close()
        second.close()


def test_token_mint_fixture_signs_tokens(token_mint: TokenMint) -> None:
    token = token_mint.issue("someone", audience="taskmesh-tasks")
    assert token.count(".") == 2


def test_require_program_skips_or_fails(
    require_program: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no-such-program-xyz"):
        require_program("no-such-program-xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-program-xyz"):
        require_program("no-such-program-xyz")
    assert require_program("python").endswith("python")


def test_backing_comes_from_the_requested_source(backing: Backing) -> None:
    source = os.environ.get("TASKMESH_BACKING", "auto")
    if source in ("path", "wheels"):
        assert backing.origin == f"postgres={source} redis={source}"
    else:
        assert backing.origin.startswith("postgres=")
