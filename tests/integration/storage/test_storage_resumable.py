"""Resumable uploads on both backends: writers across requests, crashes, discards, finishing."""

from __future__ import annotations

import pytest
from tests.conftest import S3_BUCKET as BUCKET
from tests.integration.storage.support import Backend, random_bytes, read_all

from instashare.storage import MIB, ResumableDataLostError, ResumableUpload
from instashare.storage.s3_resumable import part_sizes


def fresh(length: int) -> ResumableUpload:
    return ResumableUpload(
        scratch_key="uploads/u1",
        destination_key="originals/d1",
        length=length,
        content_type="application/pdf",
    )


def destination(backend: Backend) -> list[str]:
    key = "originals/d1"
    return [key] if backend.name == "file" else [f"{backend.prefix}/{key}"]


async def write(upload: ResumableUpload, backend: Backend, data: bytes, *, record: bool = True):
    writer = await backend.storage.open_resumable(upload)
    try:
        for start in range(0, len(data), 300 * 1024):
            await writer.write(data[start : start + 300 * 1024])
        return await writer.checkpoint() if record else upload
    finally:
        await writer.close()


async def test_an_upload_continues_across_writers_and_a_dead_request(backend: Backend) -> None:
    data = random_bytes(13 * MIB + 5, seed=11)
    upload = await write(fresh(len(data)), backend, data[: 3 * MIB])
    assert upload.offset == 3 * MIB
    upload = await write(upload, backend, data[3 * MIB : 7 * MIB])
    assert upload.offset == 7 * MIB
    if backend.name == "s3":
        # A part went out once 5 MiB were held; the rest waits in the tail object.
        [part] = upload.parts
        assert 5 * MIB <= part.size < 7 * MIB
        assert f"{backend.prefix}/uploads/u1/tail" in backend.leftovers()
    # A request that died before its checkpoint: its bytes must not count.
    await write(upload, backend, b"\xff" * (6 * MIB), record=False)
    upload = await write(upload, backend, data[7 * MIB :])
    assert upload.complete

    await backend.storage.finish_resumable(upload)
    assert await read_all(backend.storage.read("originals/d1")) == data
    await backend.storage.finish_resumable(upload)  # again, as after a crash: harmless
    assert backend.leftovers() == destination(backend)
    if backend.s3 is not None:
        head = backend.s3.client().head_object(Bucket=BUCKET, Key=f"{backend.prefix}/originals/d1")
        assert head["ContentType"] == "application/pdf"


async def test_a_small_upload_finishes_without_a_multipart_upload(backend: Backend) -> None:
    data = random_bytes(MIB + 3, seed=12)
    upload = await write(fresh(len(data)), backend, data[:1000])
    upload = await write(upload, backend, data[1000:])
    assert upload.multipart_id is None
    await backend.storage.finish_resumable(upload)
    assert await read_all(backend.storage.read("originals/d1")) == data
    assert backend.leftovers() == destination(backend)

    empty = ResumableUpload("uploads/u2", "originals/d2", length=0)
    await backend.storage.finish_resumable(empty)
    assert await backend.storage.size("originals/d2") == 0


async def test_a_discarded_chunk_leaves_no_trace(backend: Backend) -> None:
    data = random_bytes(8 * MIB, seed=13)
    upload = await write(fresh(len(data)), backend, data[:MIB])
    writer = await backend.storage.open_resumable(upload)
    await writer.write(b"x" * (6 * MIB))  # S3: a part goes out, in a new multipart upload
    await writer.discard()
    assert writer.offset == MIB
    await writer.close()
    if backend.s3 is not None:
        assert backend.s3.incomplete_uploads(BUCKET, f"{backend.prefix}/") == []
    upload = await write(upload, backend, data[MIB:])
    await backend.storage.finish_resumable(upload)
    assert await read_all(backend.storage.read("originals/d1")) == data


async def test_removing_an_upload_leaves_nothing(backend: Backend) -> None:
    data = random_bytes(12 * MIB, seed=14)
    upload = await write(fresh(len(data)), backend, data[: 7 * MIB + 10])
    # A multipart upload a dead request created and never recorded is found too.
    await write(upload.advanced(multipart_id=None, parts=(), offset=0), backend, data, record=False)
    assert backend.leftovers() != []
    await backend.storage.remove_resumable(upload)
    await backend.storage.remove_resumable(upload)
    assert backend.leftovers() == []


async def test_stored_bytes_short_of_the_recorded_offset_are_reported(backend: Backend) -> None:
    upload = fresh(10 * MIB).advanced(offset=2 * MIB)
    with pytest.raises(ResumableDataLostError):
        await backend.storage.open_resumable(upload)
    with pytest.raises(ResumableDataLostError):
        await backend.storage.finish_resumable(fresh(10).advanced(offset=10))


def test_part_sizes_keep_every_upload_within_10000_parts() -> None:
    assert part_sizes(100 * MIB, 8 * MIB) == (5 * MIB, 8 * MIB)
    smallest, sent_at = part_sizes(100 * 1024 * MIB, 8 * MIB)  # 100 GiB
    assert smallest * 10_000 >= 100 * 1024 * MIB
    assert sent_at == smallest
