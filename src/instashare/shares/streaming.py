"""A streamed response that knows how many bytes reached the connection, even when cut short."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from anyio import CancelScope, create_task_group, move_on_after
from litestar import Response
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.utils.helpers import get_enum_string_value

from instashare.shares.delivery import DeliveryRecorder

if TYPE_CHECKING:
    from litestar.app import Litestar
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures.cookie import Cookie
    from litestar.enums import MediaType
    from litestar.types import Receive, Send, TypeEncodersMap

# Closing the body (a storage stream) is bounded: a stuck store must not hold the task.
_CLOSE_TIMEOUT_SECONDS = 10


class _TrackedASGIStream(ASGIStreamingResponse):
    __slots__ = ("recorder",)

    def __init__(self, *, recorder: DeliveryRecorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder

    async def send_body(self, send: Send, receive: Receive) -> None:
        iterator = self.iterator

        async def stream() -> None:
            async for chunk in iterator:
                body = chunk if isinstance(chunk, bytes) else chunk.encode(self.encoding)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                # Counted once the server took it: a client that went away meanwhile cancels
                # this task while it waits in send(), before its chunk is counted.
                await self.recorder.delivered(len(body))
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            async with create_task_group() as task_group:
                task_group.start_soon(stream)
                await self._listen_for_disconnect(task_group.cancel_scope, receive)
        finally:
            # Shielded: this runs when the client's disconnect cancelled the response, too.
            with CancelScope(shield=True), move_on_after(_CLOSE_TIMEOUT_SECONDS):
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    await close()
            await self.recorder.flush()  # shielded and bounded itself


class TrackedStream(Response[AsyncIterator[bytes]]):
    """Like Litestar's ``Stream`` for one async iterator, reporting delivery to a recorder."""

    __slots__ = ("iterator", "recorder")

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        recorder: DeliveryRecorder,
        headers: dict[str, str],
        status_code: int,
        media_type: str,
    ) -> None:
        super().__init__(
            content=b"",  # type: ignore[arg-type]
            headers=headers,
            media_type=media_type,
            status_code=status_code,
        )
        self.iterator = content
        self.recorder = recorder

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        merged = {**headers, **self.headers} if headers is not None else self.headers
        all_cookies = self.cookies if cookies is None else itertools.chain(self.cookies, cookies)
        return _TrackedASGIStream(
            recorder=self.recorder,
            background=self.background or background,
            content_length=0,
            cookies=all_cookies,
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers=merged,
            is_head_response=is_head_response,
            iterator=self.iterator,
            media_type=get_enum_string_value(media_type or self.media_type or "application/zip"),
            status_code=self.status_code or status_code,
        )
