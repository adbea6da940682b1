"""The worker's wait for the schema, in process: what it says while it waits, and when it stops."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from tests.support.database import drop_database, scratch_database

from instashare import database_setup
from instashare.database_setup import (
    SchemaState,
    create_database_if_missing,
    upgrade_to_head,
    wait_for_schema_at_head,
)


def waiting_in_background(url: str) -> tuple[threading.Thread, dict[str, SchemaState]]:
    result: dict[str, SchemaState] = {}

    def wait() -> None:
        result["state"] = wait_for_schema_at_head(url, poll_seconds=0.05)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, result


def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class RecordingLog:
    """Stands in for the module's logger: the configured one may be cached by an earlier test."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def info(self, event: str, **fields: Any) -> None:
        if event == "waiting for the database schema":
            self.reasons.append(fields["reason"])


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> RecordingLog:
    recording = RecordingLog()
    monkeypatch.setattr(database_setup, "log", recording)
    return recording


def test_a_database_that_does_not_exist_yet_is_waited_for(
    database_url: str, log: RecordingLog
) -> None:
    name = f"instashare_wait_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        thread, result = waiting_in_background(url)
        until(lambda: any("cannot reach the database" in r for r in log.reasons))
        assert thread.is_alive()
        # What `instashare serve` does on its first start.
        create_database_if_missing(url)
        upgrade_to_head(url)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert result["state"].at_head
    finally:
        drop_database(database_url, name)


def test_a_schema_from_a_newer_release_is_waited_out(database_url: str, log: RecordingLog) -> None:
    with scratch_database(database_url) as url:
        upgrade_to_head(url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        with psycopg.connect(dsn, autocommit=True) as connection:
            (head,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            connection.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
            thread, result = waiting_in_background(url)
            until(lambda: any("which this code does not know" in r for r in log.reasons))
            assert thread.is_alive()
            # The newer release is rolled back with its own `alembic downgrade`.
            connection.execute("UPDATE alembic_version SET version_num = %s", (head,))
            thread.join(timeout=30)
        assert not thread.is_alive()
        assert result["state"].current == (head,)
