"""Finding a real PostgreSQL for the test run; creating and dropping databases on it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from instashare.database_setup import EmbeddedPostgres, connect, is_listening
from tests.support.ports import free_port

DEFAULT_SERVER = ("127.0.0.1", 5432)
HOW_TO_PROVIDE = (
    "no PostgreSQL for the tests: set TEST_DATABASE_URL=postgresql+asyncpg://user@host:port/db, "
    "or run a server on 127.0.0.1:5432 that accepts user postgres, "
    "or install the PostgreSQL server binaries (initdb, pg_ctl)"
)


async def _admin(url: str, statement: str) -> None:
    connection = await connect(url, database="postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``server_url`` (any database or none named),
    closing the connections still open on it."""
    quoted = '"' + name.replace('"', '""') + '"'
    asyncio.run(_admin(server_url, f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A uniquely named database on the server, dropped afterwards."""
    name = f"instashare_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(server_url, name)


@contextmanager
def test_database(tmp_root: Path) -> Iterator[str]:
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if is_listening(*DEFAULT_SERVER):
        with scratch_database("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres") as url:
            yield url
        return
    if EmbeddedPostgres.available():
        cluster = EmbeddedPostgres(data_dir=tmp_root / "pg" / "data", port=free_port())
        cluster.start()
        try:
            with scratch_database(cluster.url) as url:
                yield url
        finally:
            cluster.stop()
        return
    raise RuntimeError(HOW_TO_PROVIDE)
