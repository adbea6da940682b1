"""Writing an object piece by piece, on both backends."""

from __future__ import annotations

import asyncio

import pytest
from tests.integration.storage.support import Backend, Boom, chunked, random_bytes, read_all

from instashare.storage import MIB, Storage, StorageUnavailableError


async def test_writer_commits_on_clean_exit(backend: Backend) -> None:
    data = random_bytes(11 * MIB + 5, seed=2)
    async with backend.storage.writer("zips/w.zip", content_type="application/zip") as sink:
        await sink.write(b"")  # ignored
        async for chunk in chunked(data[:-5]):
            await sink.write(chunk)
        await sink.write(bytearray(data[-5:]))  # type: ignore[arg-type]  # copied, not kept

    assert sink.bytes_written == len(data)
    assert await read_all(backend.storage.read("zips/w.zip")) == data
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write(b"late")


async def test_writer_aborts_when_the_block_raises(backend: Backend) -> None:
    with pytest.raises(Boom):  # noqa: PT012
        async with backend.storage.writer("zips/a.zip") as sink:
            async for chunk in chunked(random_bytes(7 * MIB)):
                await sink.write(chunk)
            await asyncio.sleep(0.2)
            raise Boom

    assert not await backend.storage.exists("zips/a.zip")
    assert backend.leftovers() == []
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write(b"late")


async def test_writer_aborts_when_cancelled(backend: Backend) -> None:
    written = asyncio.Event()

    async def job() -> None:
        async with backend.storage.writer("zips/c.zip") as sink:
            async for chunk in chunked(random_bytes(7 * MIB)):
                await sink.write(chunk)
            written.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await asyncio.wait_for(written.wait(), timeout=30)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert backend.leftovers() == []


async def test_backend_failure_surfaces_from_the_writer(failing: tuple[Storage, str]) -> None:
    storage, key = failing
    with pytest.raises(StorageUnavailableError):  # noqa: PT012
        async with storage.writer(key) as sink:
            for _ in range(10_000):  # the failure shows up once the upload has given up
                await sink.write(random_bytes(64 * 1024))
                await asyncio.sleep(0.001)
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write(b"late")


async def test_writer_exit_reports_a_failure_not_seen_by_write(
    failing: tuple[Storage, str],
) -> None:
    storage, key = failing
    with pytest.raises(StorageUnavailableError):
        async with storage.writer(key) as sink:
            await sink.write(b"x")  # queued before the upload had a chance to fail
