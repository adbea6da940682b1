"""Storing, reading and deleting objects, on both backends."""

from __future__ import annotations

import pytest
from tests.conftest import S3_BUCKET as BUCKET
from tests.integration.storage.support import Backend, chunked, random_bytes, read_all

from instashare.storage import MIB, ObjectNotFoundError

# --- round trip -----------------------------------------------------------------------------


async def test_streamed_upload_reads_back_identically(backend: Backend) -> None:
    data = random_bytes(12 * MIB + 123)
    storage = backend.storage

    written = await storage.upload("originals/a", chunked(data), content_type="application/pdf")

    assert written == len(data)
    assert await storage.size("originals/a") == len(data)
    assert await storage.exists("originals/a")
    assert not await storage.exists("originals/b")
    chunks = [chunk async for chunk in storage.read("originals/a", chunk_size=MIB)]
    assert b"".join(chunks) == data
    assert len(chunks) > 1
    assert all(len(chunk) >= MIB for chunk in chunks[:-1])
    assert backend.leftovers() == (
        ["originals/a"] if backend.name == "file" else [f"{backend.prefix}/originals/a"]
    )
    if backend.s3 is not None:
        head = backend.s3.client().head_object(Bucket=BUCKET, Key=f"{backend.prefix}/originals/a")
        assert head["ETag"].endswith('-3"')  # a multipart upload of three parts
        assert head["ContentType"] == "application/pdf"


async def test_ranged_reads_behave_like_slicing(backend: Backend) -> None:
    data = random_bytes(3 * MIB + 7, seed=1)
    size = len(data)
    await backend.storage.upload("originals/r", chunked(data))

    cases: list[tuple[int, int | None]] = [
        (0, None),
        (0, 1),
        (100, 1000),
        (MIB - 3, MIB + 6),
        (size - 10, None),  # to the end
        (size - 10, 100),  # length past the end: cut at the end
        (5, 2 * size),
        (0, size),
        (size - 1, 1),
        (size, None),  # starting at the end: nothing
        (size + 5, 10),  # starting past the end: nothing
        (10, 0),  # empty range
    ]
    for start, length in cases:
        expected = data[start:] if length is None else data[start : start + length]
        got = await read_all(backend.storage.read("originals/r", start=start, length=length))
        assert got == expected, (start, length)


async def test_empty_upload_makes_an_empty_object(backend: Backend) -> None:
    assert await backend.storage.upload("originals/empty", chunked(b"")) == 0
    assert await backend.storage.size("originals/empty") == 0
    assert await read_all(backend.storage.read("originals/empty")) == b""
    assert await read_all(backend.storage.read("originals/empty", start=0, length=5)) == b""


async def test_read_rejects_invalid_arguments(backend: Backend) -> None:
    with pytest.raises(ValueError, match="negative"):
        await read_all(backend.storage.read("k", start=-1))
    with pytest.raises(ValueError, match="negative"):
        await read_all(backend.storage.read("k", length=-1))
    with pytest.raises(ValueError, match="chunk_size"):
        await read_all(backend.storage.read("k", chunk_size=0))


# --- other operations ------------------------------------------------------------------------


async def test_delete_is_idempotent_and_missing_objects_raise(backend: Backend) -> None:
    storage = backend.storage
    await storage.delete("originals/never-existed")

    await storage.upload("originals/d", chunked(b"hello"))
    await storage.delete("originals/d")
    await storage.delete("originals/d")

    assert not await storage.exists("originals/d")
    with pytest.raises(ObjectNotFoundError) as raised:
        await storage.size("originals/d")
    assert raised.value.key == "originals/d"
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.read("originals/d"))
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.read("originals/d", start=1))
    assert backend.leftovers() == []


async def test_check_passes_on_a_healthy_backend(backend: Backend) -> None:
    await backend.storage.check()
