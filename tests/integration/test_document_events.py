"""GET /api/events: live status of one's documents, pushed as changes commit anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import uploaded
from tests.support.events import Event, events, next_event

from instashare.config import Settings
from instashare.db import session_maker
from instashare.documents import events as events_module
from instashare.documents.compression import Compressor, Outcome
from instashare.storage import Storage


@asynccontextmanager
async def event_stream(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> AsyncIterator[AsyncIterator[Event]]:
    async with client.stream("GET", "/api/events", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = await anext(stream)  # the retry hint: the stream is subscribed from here on
        assert first.event == "message"
        yield stream


def compressor(settings: Settings, engine: AsyncEngine) -> Compressor:
    storage = Storage.from_settings(settings.storage_settings())
    return Compressor.from_settings(settings, session_maker(engine), storage)


async def test_uploads_renames_compression_and_deletes_are_pushed(
    client: httpx.AsyncClient, headers: dict[str, str], settings: Settings, engine: AsyncEngine
) -> None:
    async with event_stream(client, headers) as stream:
        document = await uploaded(client, headers, content=b"live " * 1000)
        pending = await next_event(stream, "document", id=document["id"])
        assert pending.json()["status"] == "pending"
        assert pending.id is not None

        # A worker elsewhere (its own engine and connections) compresses it.
        outcome = await compressor(settings, engine).run(UUID(document["id"]), last_attempt=True)
        assert outcome == Outcome.COMPRESSED
        ready = await next_event(stream, "document", id=document["id"], status="ready")
        assert ready.json()["compressed_size"] > 0

        path = f"/api/documents/{document['id']}"
        await client.patch(path, headers=headers, json={"name": "renamed.txt"})
        renamed = await next_event(stream, "document", id=document["id"], name="renamed.txt")
        assert int(renamed.id or 0) > int(ready.id or 0)

        assert (await client.delete(path, headers=headers)).status_code == 204
        await next_event(stream, "document-deleted", id=document["id"])


async def test_only_the_owners_changes_reach_a_stream(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    other = await auth_headers(client)
    async with event_stream(client, headers) as stream:
        theirs = await uploaded(client, other)
        mine = await uploaded(client, headers)
        first = await next_event(stream, "document")
    assert first.json()["id"] == mine["id"] != theirs["id"]


async def test_a_client_that_reconnects_gets_what_changed_meanwhile(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    async with event_stream(client, headers) as stream:
        document = await uploaded(client, headers)
        seen = await next_event(stream, "document", id=document["id"])
    path = f"/api/documents/{document['id']}"
    await client.patch(path, headers=headers, json={"name": "while away.txt"})
    resumed = {**headers, "Last-Event-ID": str(seen.id)}
    async with event_stream(client, resumed) as stream:
        await next_event(stream, "document", id=document["id"], name="while away.txt")
    # The same cursor as a query parameter, for a first connection after a page was rendered.
    async with event_stream(client, headers, since=str(seen.id)) as stream:
        await next_event(stream, "document", id=document["id"], name="while away.txt")


async def test_an_idle_stream_is_kept_alive_with_comments(
    client: httpx.AsyncClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "KEEPALIVE_SECONDS", 0.2)
    async with event_stream(client, headers) as stream:
        quiet = await anext(stream)
    assert quiet.comments == ["keep-alive"]
    assert quiet.data == ""


async def test_streams_end_when_announcements_may_be_lost(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine
) -> None:
    async with event_stream(client, headers) as stream:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        async with asyncio.timeout(10):
            rest = [event async for event in stream if event.event == "document"]
    assert rest == []  # it ended: the browser reconnects with Last-Event-ID and catches up


@pytest.mark.parametrize("cursor", ["yesterday", "12abc", "9" * 30])
async def test_a_malformed_cursor_is_400(
    client: httpx.AsyncClient, headers: dict[str, str], cursor: str
) -> None:
    response = await client.get("/api/events", headers={**headers, "Last-Event-ID": cursor})
    assert response.status_code == 400
    assert response.json()["extra"][0]["key"] == "Last-Event-ID"
    assert "Last-Event-ID" in response.json()["detail"]


async def test_events_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/events")
    assert response.status_code == 401
