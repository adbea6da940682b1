"""Real `instashare` processes starting together, and against a schema that is not theirs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from tests.support.database import drop_database, scratch_database
from tests.support.ports import free_port
from tests.support.processes import ROOT, Process, instashare, wait_until_serving

A_NEWER_RELEASE_REVISION = "f00dfeedbeef"


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        yield url


def alembic(url: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def execute(url: str, statement: str) -> list[tuple[object, ...]]:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


def service_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "STORAGE_URL": (tmp_path / "storage").as_uri(),
        "INSTASHARE_ENV": "test",
    }


def wait_for_log(process: Process, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        if process.popen.poll() is not None:
            raise AssertionError(f"exited before logging {text!r}:\n{process.log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never logged {text!r}:\n{process.log()}")
        time.sleep(0.1)


def test_three_servers_started_at_once_on_a_missing_database_all_serve(
    database_url: str, tmp_path: Path
) -> None:
    name = f"instashare_trio_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    env = service_env(url, tmp_path)
    ports = [free_port() for _ in range(3)]
    try:
        with ExitStack() as stack:
            started = time.monotonic()
            servers = [
                stack.enter_context(
                    instashare(
                        ["serve", "--port", str(port), "--no-worker"],
                        env,
                        tmp_path / f"serve-{port}.log",
                    )
                )
                for port in ports
            ]
            for port, server in zip(ports, servers, strict=True):
                wait_until_serving(f"http://127.0.0.1:{port}/health", server, timeout=120)
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                assert health["checks"]["database"] == "ok"
            print(
                f"three `instashare serve` on a missing database, all healthy in "
                f"{time.monotonic() - started:.1f}s"
            )
        head = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()
        assert execute(url, "SELECT version_num FROM alembic_version") == [(head,)]
    finally:
        drop_database(database_url, name)


def test_serve_refuses_a_database_migrated_by_a_newer_release(
    empty_database_url: str, tmp_path: Path
) -> None:
    alembic(empty_database_url, "upgrade", "head")
    execute(
        empty_database_url, f"UPDATE alembic_version SET version_num = '{A_NEWER_RELEASE_REVISION}'"
    )

    result = subprocess.run(
        [sys.executable, "-m", "instashare", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, **service_env(empty_database_url, tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert A_NEWER_RELEASE_REVISION in result.stderr
    assert "does not know" in result.stderr
    assert "Traceback" not in result.stderr
    assert execute(empty_database_url, "SELECT version_num FROM alembic_version") == [
        (A_NEWER_RELEASE_REVISION,)
    ]


def test_the_worker_waits_for_the_schema_then_starts(
    empty_database_url: str, tmp_path: Path
) -> None:
    script = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    env = service_env(empty_database_url, tmp_path)

    with instashare(["worker"], env, tmp_path / "worker.log") as worker:
        wait_for_log(worker, "the database has no schema yet")
        alembic(empty_database_url, "upgrade", previous)
        wait_for_log(worker, f"the database is at revision {previous}, this code needs {head}")
        assert "workers starting" not in worker.log()
        # The worker never migrates: still one revision behind after all that waiting.
        assert execute(empty_database_url, "SELECT version_num FROM alembic_version") == [
            (previous,)
        ]
        alembic(empty_database_url, "upgrade", "head")
        wait_for_log(worker, "workers starting")
        assert worker.popen.poll() is None
