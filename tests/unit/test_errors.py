"""Which failures are outages (503) and which are bugs (500)."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from tests.support.ports import free_port

from instashare.errors import DEPENDENCY_ERROR_HANDLERS, is_database_outage


@get("/disk")
async def touch_a_missing_file() -> None:
    raise PermissionError("our own bug, not the database")


@get("/database")
async def query_a_database_that_is_down() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    async with engine.connect():
        pass  # pragma: no cover


def test_an_oserror_of_our_own_is_not_an_outage() -> None:
    with pytest.raises(PermissionError) as caught:
        raise PermissionError("denied")
    assert not is_database_outage(caught.value)


async def test_a_refused_database_connection_is_an_outage() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(ConnectionRefusedError) as caught:
        async with engine.connect():
            pass  # pragma: no cover
    assert is_database_outage(caught.value)


async def test_only_database_oserrors_are_answered_503() -> None:
    app = Litestar(
        [touch_a_missing_file, query_a_database_that_is_down],
        exception_handlers=DEPENDENCY_ERROR_HANDLERS,
    )
    async with AsyncTestClient(app) as client:
        bug = await client.get("/disk")
        outage = await client.get("/database")
    assert bug.status_code == 500
    assert bug.json() == {"status_code": 500, "detail": "Internal Server Error"}
    assert outage.status_code == 503
    assert outage.json()["detail"] == "the database is unavailable; try again later"
