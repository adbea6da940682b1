"""Live status: ``GET /api/events`` streams changes to the caller's documents as they commit.

A trigger on the document table stamps every change an owner can see with the database's clock
(``changed_at``) and announces it with ``NOTIFY`` (migration 36bee1424f13), whichever API process,
worker or operator made it. Each API process listens once (instashare.notifications) and hands
each announcement to the open streams of that document's owner. A client that reconnects with
``Last-Event-ID`` (or ``?since=``) first gets what changed while it was away, read from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final
from uuid import UUID

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.security.jwt import Token
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from instashare.accounts.principals import Principal
from instashare.db import session_maker
from instashare.documents.models import Document
from instashare.documents.schemas import DocumentRead
from instashare.notifications import Notifications
from instashare.validation import invalid

CHANNEL: Final = "instashare_document_changed"
KEEPALIVE_SECONDS: Final = 15.0
# A change is stamped when its statement runs but seen when its transaction commits, so one
# stamped a little earlier can commit after one a client has already seen: look back this far.
CATCH_UP_MARGIN: Final = timedelta(seconds=5)
CATCH_UP_LIMIT: Final = 1000
# Changes one stream may fall behind by; a client that stops reading is let go (and catches up).
QUEUE_DEPTH: Final = 1000
LISTENING_WAIT_SECONDS: Final = 5.0
# How soon a browser reconnects after the stream ends (EventSource's "retry").
RETRY_MILLISECONDS: Final = 2000


class DocumentDeleted(msgspec.Struct):
    id: UUID


_Change = tuple[UUID, bool]  # (document id, deleted)
_END: Final = None  # put in a stream's queue: end it, its client reconnects and catches up


def event_id(changed_at: datetime) -> str:
    """Microseconds since the epoch, the cursor a client hands back as ``Last-Event-ID``."""
    delta = changed_at - datetime(1970, 1, 1, tzinfo=UTC)
    return str(delta // timedelta(microseconds=1))


def parse_event_id(value: str) -> datetime:
    try:
        micros = int(value)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    except (ValueError, OverflowError) as exc:
        raise invalid(
            "Last-Event-ID",
            "must be the id of an event this stream sent",
            detail="Last-Event-ID (or since) must be the id of an event this stream sent",
        ) from exc


class DocumentEvents:
    """Hands each announced change to the open streams of the document's owner."""

    def __init__(self, engine: AsyncEngine, notifications: Notifications) -> None:
        self._sessions = session_maker(engine)
        self._notifications = notifications
        self._streams: dict[UUID, set[asyncio.Queue[_Change | None]]] = defaultdict(set)
        notifications.subscribe(CHANNEL, self._on_announcement, self._end_every_stream)

    def _on_announcement(self, payload: str) -> None:
        owner, document, kind = payload.split(" ")
        for queue in self._streams.get(UUID(owner), ()):
            try:
                queue.put_nowait((UUID(document), kind == "deleted"))
            except asyncio.QueueFull:
                _end(queue)

    def _end_every_stream(self) -> None:
        # Announcements may be lost from now on: let every client reconnect and catch up.
        for queues in self._streams.values():
            for queue in queues:
                _end(queue)

    async def stream(
        self, owner_id: UUID, since: datetime | None
    ) -> AsyncIterator[ServerSentEventMessage]:
        queue: asyncio.Queue[_Change | None] = asyncio.Queue(maxsize=QUEUE_DEPTH)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LISTENING_WAIT_SECONDS):
                await self._notifications.wait_until_listening()
        if not self._notifications.listening:
            # Nothing would be announced to this stream: have the client try again shortly.
            yield ServerSentEventMessage(data=None, retry=RETRY_MILLISECONDS)
            return
        self._streams[owner_id].add(queue)
        try:
            yield ServerSentEventMessage(data=None, retry=RETRY_MILLISECONDS)
            if since is not None:
                for document in await self._changed_since(owner_id, since):
                    yield _document_event(document)
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        change = await queue.get()
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                if change is _END:
                    return
                document_id, deleted = change
                if deleted:
                    data = msgspec.json.encode(DocumentDeleted(id=document_id))
                    yield ServerSentEventMessage(event="document-deleted", data=data)
                elif (current := await self._current(owner_id, document_id)) is not None:
                    yield _document_event(current)
        finally:
            self._streams[owner_id].discard(queue)
            if not self._streams[owner_id]:
                del self._streams[owner_id]

    async def _changed_since(self, owner_id: UUID, since: datetime) -> list[Document]:
        query = (
            select(Document)
            .where(Document.owner_id == owner_id, Document.changed_at > since - CATCH_UP_MARGIN)
            .order_by(Document.changed_at)
            .limit(CATCH_UP_LIMIT)
        )
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def _current(self, owner_id: UUID, document_id: UUID) -> Document | None:
        query = select(Document).where(Document.id == document_id, Document.owner_id == owner_id)
        async with self._sessions() as session:
            return (await session.scalars(query)).one_or_none()


def _end(queue: asyncio.Queue[_Change | None]) -> None:
    if queue.full():  # no room for the end marker: make some, the stream ends anyway
        queue.get_nowait()
    queue.put_nowait(_END)


def _document_event(document: Document) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        event="document",
        data=msgspec.json.encode(DocumentRead.from_model(document)),
        id=event_id(document.changed_at) if document.changed_at else None,
    )


@get(
    "/api/events",
    summary="Live status of your documents",
    description=(
        "`text/event-stream`: `event: document` with the `Document` as `data` whenever a "
        "document's name, status or size changes (whoever changed it), `event: "
        "document-deleted` with its `id`, and a comment every 15 s. Reconnect with "
        "`Last-Event-ID` (or `?since=<event id>`) to get what changed meanwhile."
    ),
    tags=["documents"],
)
async def stream_document_events(
    request: Request[Principal, Token, State],
    document_events: DocumentEvents,
    since: Annotated[str | None, Parameter(max_length=32)] = None,
) -> ServerSentEvent:
    cursor = request.headers.get("last-event-id") or since
    start = parse_event_id(cursor) if cursor else None
    return ServerSentEvent(document_events.stream(request.user.id, start))
