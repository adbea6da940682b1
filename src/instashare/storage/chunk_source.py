"""The caller's chunks as obstore pulls them during an S3 upload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

from instashare.storage.settings import MERGE_CHUNKS_UP_TO
from instashare.storage.tasks import close_quietly


class ChunkSource:
    """The async iterator handed to ``obstore.put_async``.

    obstore pulls each chunk by running ``__anext__`` as a task of its own on the event loop,
    so cancelling the task that called ``upload()`` does not reach the caller's iterator. This
    class remembers the caller's exception (so that it, not obstore's re-wrapping, propagates)
    and lets ``upload()`` stop the transfer by making the next pull fail, which is the one path
    on which obstore aborts the multipart upload by itself.
    """

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = aiter(chunks)
        self.bytes_read = 0
        self.error: BaseException | None = None
        self._stopped = False
        self._exhausted = False
        self._pulling: asyncio.Task[Any] | None = None

    def __aiter__(self) -> ChunkSource:
        return self

    async def __anext__(self) -> bytes:
        if self._stopped:
            raise asyncio.CancelledError
        if self._exhausted:
            raise StopAsyncIteration
        self._pulling = asyncio.current_task()
        try:
            return await self._next_merged()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            if not self._stopped:
                self.error = exc
            raise
        finally:
            self._pulling = None

    async def _next_merged(self) -> bytes:
        merged = bytearray()
        while True:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._exhausted = True
                if merged:
                    return bytes(merged)
                raise
            self.bytes_read += len(chunk)
            if not merged and len(chunk) >= MERGE_CHUNKS_UP_TO:
                return chunk  # large enough already: hand it over without a copy
            merged += chunk
            if len(merged) >= MERGE_CHUNKS_UP_TO:
                return bytes(merged)

    def stop(self) -> None:
        """Make obstore's current or next pull fail, so that it aborts the upload."""
        self._stopped = True
        if self._pulling is not None:
            self._pulling.cancel()

    async def aclose(self) -> None:
        """Close the caller's iterator if obstore stopped pulling before its end.

        Otherwise an abandoned async generator (say, over a request body) would only run its
        ``finally`` whenever the garbage collector gets to it.
        """
        if self._exhausted or self.error is not None:
            return  # it finished by itself
        await close_quietly(self._chunks)
