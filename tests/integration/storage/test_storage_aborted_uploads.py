"""Failed and cancelled uploads leave nothing behind, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.integration.storage.support import Backend, Boom, chunked, random_bytes

from instashare.storage import MIB
from instashare.storage.chunk_source import ChunkSource


async def test_failing_source_aborts_upload_and_propagates(backend: Backend) -> None:
    boom = Boom("client sent too much")

    async def source() -> AsyncIterator[bytes]:
        async for chunk in chunked(random_bytes(7 * MIB)):  # past the first part
            yield chunk
        raise boom

    with pytest.raises(Boom) as raised:
        await backend.storage.upload("originals/f", source(), content_type="text/plain")

    assert raised.value is boom
    assert not await backend.storage.exists("originals/f")
    assert backend.leftovers() == []


@pytest.mark.parametrize("source_state", ["stalled", "streaming"])
async def test_cancelled_upload_leaves_nothing(backend: Backend, source_state: str) -> None:
    past_first_part = asyncio.Event()
    source_closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            sent = 0
            while True:
                if sent >= 7 * MIB:
                    past_first_part.set()
                    if source_state == "stalled":
                        await asyncio.Event().wait()  # a client that stopped sending
                piece = random_bytes(64 * 1024, seed=sent)
                sent += len(piece)
                yield piece
                await asyncio.sleep(0)
        finally:
            source_closed.set()

    task = asyncio.create_task(backend.storage.upload("originals/c", source()))
    await asyncio.wait_for(past_first_part.wait(), timeout=30)
    await asyncio.sleep(0.2)  # let a part upload get under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert source_closed.is_set()
    assert not await backend.storage.exists("originals/c")
    assert backend.leftovers() == []


async def test_a_stopped_source_fails_the_next_pull() -> None:
    # The cancellation tests reach this only when the cancel lands while obstore is busy
    # uploading rather than waiting for a chunk, which depends on timing.
    source = ChunkSource(chunked(b"abc"))
    source.stop()
    with pytest.raises(asyncio.CancelledError):
        await anext(source)
    assert source.error is None  # a stop is not the caller's failure


async def test_upload_cancelled_while_completing_is_removed(backend: Backend) -> None:
    exhausted = asyncio.Event()

    class Source:
        def __init__(self) -> None:
            self.pieces = [random_bytes(MIB, seed=i) for i in range(6)]

        def __aiter__(self) -> Source:
            return self

        async def __anext__(self) -> bytes:
            if not self.pieces:
                exhausted.set()
                raise StopAsyncIteration
            return self.pieces.pop()

    task = asyncio.create_task(backend.storage.upload("originals/late", Source()))
    await asyncio.wait_for(exhausted.wait(), timeout=30)
    # All data is handed over and obstore is completing the upload: too late to abort it,
    # so the finished object has to be deleted instead.
    assert task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert not await backend.storage.exists("originals/late")
    assert backend.leftovers() == []


async def test_second_cancellation_does_not_cut_cleanup_short(backend: Backend) -> None:
    started = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        yield random_bytes(6 * MIB)
        started.set()
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    task = asyncio.create_task(backend.storage.upload("originals/twice", source()))
    await asyncio.wait_for(started.wait(), timeout=30)
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert backend.leftovers() == []
