"""The migration history against a real, empty database: pytest-alembic's checks and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_alembic.tests import (  # noqa: F401  (collected as tests)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from tests.support.database import scratch_database
from tests.support.processes import ROOT


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        yield url


@pytest.fixture
def alembic_engine(empty_database_url: str) -> AsyncEngine:
    # Every pytest-alembic step runs in its own event loop: pooled connections cannot carry over.
    return create_async_engine(empty_database_url, poolclass=NullPool)


def alembic(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def revisions() -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_alembic_command_line_round_trip(empty_database_url: str) -> None:
    history = revisions()
    head = history[-1]

    assert "(head)" not in alembic(empty_database_url, "current")
    alembic(empty_database_url, "upgrade", "head")
    assert f"{head} (head)" in alembic(empty_database_url, "current")
    assert "No new upgrade operations detected" in alembic(empty_database_url, "check")

    alembic(empty_database_url, "downgrade", "-1")
    current = alembic(empty_database_url, "current")
    assert head not in current
    if len(history) > 1:
        assert history[-2] in current

    alembic(empty_database_url, "upgrade", "head")
    alembic(empty_database_url, "downgrade", history[0])
    assert history[0] in alembic(empty_database_url, "current")
    alembic(empty_database_url, "downgrade", "base")
    assert history[0] not in alembic(empty_database_url, "current")

    log = alembic(empty_database_url, "history")
    for revision in history:
        assert revision in log


def test_offline_sql_renders_every_table(empty_database_url: str) -> None:
    sql = alembic(empty_database_url, "upgrade", "head", "--sql")
    assert "CREATE TABLE user_account" in sql
    assert "CREATE TABLE document" in sql


def test_autogenerate_on_a_current_database_finds_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    alembic(empty_database_url, "upgrade", "head")
    output = alembic(empty_database_url, "check")
    assert "No new upgrade operations detected" in output
