"""Fixtures of the shares tests: accounts, ready documents, shares, all over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import uploaded

from instashare.config import Settings
from instashare.db import session_maker
from instashare.documents.compression import Compressor, Outcome
from instashare.storage import Storage

Ready = Callable[..., Awaitable[dict]]


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    return await auth_headers(client)


@pytest.fixture
def compressor(engine: AsyncEngine, settings: Settings) -> Compressor:
    storage = Storage.from_settings(settings.storage_settings())
    return Compressor.from_settings(settings, session_maker(engine), storage)


@pytest.fixture
def ready(client: httpx.AsyncClient, compressor: Compressor, engine: AsyncEngine) -> Ready:
    """Upload a document as ``headers``' owner and compress it at once; its JSON, now ready."""

    async def make(headers: dict[str, str], content: bytes = b"hello\n", **kwargs: object) -> dict:
        document = await uploaded(client, headers, content=content, **kwargs)
        outcome = await compressor.run(UUID(document["id"]), last_attempt=True)
        assert outcome == Outcome.COMPRESSED
        # The upload queued a compression job; done here already, it would only be a backlog
        # for the tests that run real workers on this database.
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM saq_jobs WHERE key = :key"), {"key": f"compress:{document['id']}"}
            )
        response = await client.get(f"/api/documents/{document['id']}", headers=headers)
        assert response.json()["status"] == "ready"
        return dict(response.json())

    return make
