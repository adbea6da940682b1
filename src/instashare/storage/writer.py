"""Writing an object piece by piece, for producers that push bytes rather than yield them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Final

from instashare.storage.tasks import wait_out

# How many pending chunks a Writer may queue before write() waits for the upload to catch up.
_QUEUE_DEPTH: Final = 8


class Writer:
    """A sink for one object, obtained from :meth:`Storage.writer`.

    It runs ``upload`` over the chunks passed to :meth:`write` from the moment it is created;
    :meth:`commit` ends the object, :meth:`abort` gives it up. Memory stays bounded: ``write``
    waits while the upload is behind.
    """

    def __init__(self, upload: Callable[[AsyncIterable[bytes]], Awaitable[int]]) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_DEPTH)
        self._upload = asyncio.ensure_future(upload(self._queued_chunks()))
        self._closed = False
        self.bytes_written = 0
        # Once the upload has ended (it can only fail while data is still expected), nothing
        # reads the queue any more: empty it so that a write() blocked on a full queue wakes up
        # and reports the failure instead of waiting forever.
        self._upload.add_done_callback(lambda _: self._discard_queued())

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for upload; waits while the upload is behind (bounded memory)."""
        self._raise_if_unusable()
        if not data:
            return
        # The queue holds references until upload; a mutable buffer could change under it.
        chunk = bytes(data) if not isinstance(data, bytes) else data
        await self._queue.put(chunk)
        self.bytes_written += len(chunk)
        self._raise_if_unusable()

    async def commit(self) -> None:
        """End the object and wait until it is stored. The writer is closed afterwards.

        Raises the upload's error if it failed; the caller then calls :meth:`abort`.
        """
        self._raise_if_unusable()
        self._closed = True
        await self._queue.put(None)
        await asyncio.shield(self._upload)

    async def abort(self) -> None:
        """Close the writer, stop the upload and wait until nothing of the object is left.

        Safe to call at any point, also after :meth:`commit` failed or was cancelled; a
        cancellation that arrives meanwhile does not cut the cleanup short.
        """
        self._closed = True
        # The upload turns its cancellation into an abort plus cleanup.
        self._upload.cancel()
        await wait_out(self._upload)

    def _raise_if_unusable(self) -> None:
        if self._closed:
            msg = "the writer is closed"
            raise RuntimeError(msg)
        if self._upload.done():
            self._upload.result()  # raises the upload's error
            msg = "the upload ended before the writer was closed"  # pragma: no cover
            raise RuntimeError(msg)  # pragma: no cover

    def _discard_queued(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _queued_chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk
