"""Storage against both real backends: a local directory and S3 (moto over real HTTP)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import obstore
import pytest
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore
from tests.conftest import S3_BUCKET as BUCKET
from tests.s3_server import MotoS3

from instashare import storage as storage_module
from instashare.storage import (
    MIB,
    ObjectNotFoundError,
    Storage,
    StorageSettings,
    StorageUnavailableError,
)

PART_SIZE = 5 * MIB  # the S3 minimum, so a 12 MiB body takes three parts
# Varied sizes exercise both paths of the chunk merging: tiny pieces and pass-through ones.
CHUNK_SIZES = [1, 4096, 65536, 300 * 1024, 17, 1 * MIB]


class Boom(Exception):
    pass


@dataclass
class Backend:
    name: str
    storage: Storage
    # Every stored file/object under this test's root, plus S3 multipart uploads left open.
    leftovers: Callable[[], list[str]]
    s3: MotoS3 | None = None
    prefix: str = ""


def all_files(root: Path) -> list[str]:
    """Every file under ``root``, relative to it; dotfiles (partial uploads) included."""
    return sorted(
        os.path.relpath(os.path.join(directory, name), root)
        for directory, _, names in os.walk(root)
        for name in names
    )


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        root = tmp_path / "store"
        storage = Storage.from_settings(StorageSettings(url=root.as_uri(), part_size=PART_SIZE))
        return Backend("file", storage, lambda: all_files(root))

    s3: MotoS3 = request.getfixturevalue("moto")
    prefix = f"test-{uuid4().hex}"  # one bucket for the session, a fresh root per test
    storage = Storage.from_settings(
        StorageSettings(url=f"s3://{BUCKET}/{prefix}", part_size=PART_SIZE, **s3.storage_options())
    )
    client = s3.client()

    def s3_leftovers() -> list[str]:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
        objects = [item["Key"] for item in listed.get("Contents", [])]
        incomplete = s3.incomplete_uploads(BUCKET, f"{prefix}/")
        return objects + [f"incomplete multipart upload: {key}" for key in incomplete]

    return Backend("s3", storage, s3_leftovers, s3=s3, prefix=prefix)


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunked(data: bytes, sizes: list[int] = CHUNK_SIZES) -> AsyncIterator[bytes]:
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position : position + size]
        position += size
        index += 1
        await asyncio.sleep(0)


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_s3_storage(**overrides: Any) -> Storage:
    return Storage.from_settings(
        StorageSettings(
            url=f"s3://{BUCKET}",
            s3_endpoint=f"http://127.0.0.1:{closed_port()}",
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            **overrides,
        )
    )


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


# --- failed and cancelled uploads leave nothing ----------------------------------------------


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
    source = storage_module._ChunkSource(chunked(b"abc"))
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


# --- writer ----------------------------------------------------------------------------------


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


# --- storage failures ------------------------------------------------------------------------


async def test_unreachable_s3_fails_fast_with_storage_unavailable() -> None:
    storage = unreachable_s3_storage()

    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        await storage.check()
    assert time.monotonic() - started < 5

    with pytest.raises(StorageUnavailableError):
        await storage.size("originals/x")
    with pytest.raises(StorageUnavailableError):
        await storage.upload("originals/x", chunked(b"data"))
    with pytest.raises(StorageUnavailableError):
        await read_all(storage.read("originals/x"))


async def test_check_is_bounded_when_the_server_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "_PROBE_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        storage = Storage.from_settings(
            StorageSettings(
                url=f"s3://{BUCKET}",
                s3_endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                s3_access_key_id="testing",
                s3_secret_access_key="testing",
            )
        )
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError, match="TimeoutError"):
            await storage.check()
        assert time.monotonic() - started < 3


async def test_check_fails_for_a_missing_bucket(moto: MotoS3) -> None:
    storage = Storage.from_settings(
        StorageSettings(url="s3://no-such-bucket-here", **moto.storage_options())
    )
    with pytest.raises(StorageUnavailableError):
        await storage.check()


async def test_local_check_fails_when_the_directory_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = Storage.from_settings(StorageSettings(url=root.as_uri()))
    await storage.check()
    shutil.rmtree(root)
    with pytest.raises(StorageUnavailableError, match="does not exist"):
        await storage.check()


async def test_local_check_fails_when_the_directory_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage.from_settings(StorageSettings(url=tmp_path.as_uri()))
    # Permission bits do not stop root, which the tests may run as; fake the answer instead.
    monkeypatch.setattr(os, "access", lambda *_: False)
    with pytest.raises(StorageUnavailableError, match="not writable"):
        await storage.check()


@pytest.fixture(params=["file", "s3"])
def failing(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, str]:
    """A storage and key whose writes fail inside the backend."""
    if request.param == "file":
        (tmp_path / "blocker").write_bytes(b"")  # a file where a directory is needed
        return Storage.from_settings(StorageSettings(url=tmp_path.as_uri())), "blocker/x"
    return unreachable_s3_storage(max_retries=0), "originals/x"


class EndlessChunks:
    """A plain async iterator (no aclose), as opposed to an async generator."""

    def __aiter__(self) -> EndlessChunks:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)
        return random_bytes(64 * 1024)


async def test_backend_failure_during_upload_is_storage_unavailable(
    failing: tuple[Storage, str],
) -> None:
    storage, key = failing
    source = chunked(random_bytes(MIB))

    with pytest.raises(StorageUnavailableError):
        await storage.upload(key, source)
    # The abandoned generator is closed, not left to the garbage collector.
    assert source.ag_frame is None  # type: ignore[attr-defined]
    with pytest.raises(StorageUnavailableError):
        await storage.upload(key, EndlessChunks())


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


# --- local backend: uploads written by the module itself --------------------------------------

PARTIAL = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{16}\.part")


def local_storage(root: Path) -> Storage:
    return Storage.from_settings(StorageSettings(url=root.as_uri()))


async def test_local_object_is_invisible_until_complete(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    key = f"archives/{uuid4()}/{uuid4()}"
    halfway, go_on = asyncio.Event(), asyncio.Event()
    data = random_bytes(3 * MIB, seed=3)

    async def source() -> AsyncIterator[bytes]:
        yield data[:MIB]
        halfway.set()
        await go_on.wait()
        yield data[MIB:]

    task = asyncio.create_task(storage.upload(key, source()))
    await asyncio.wait_for(halfway.wait(), timeout=30)
    await asyncio.sleep(0.05)

    # Only a dot-prefixed partial file exists, beside the object's path.
    [partial] = all_files(root)
    directory, name = partial.rsplit("/", 1)
    assert directory == key.rsplit("/", 1)[0]
    match = PARTIAL.fullmatch(name)
    assert match is not None
    assert match["name"] == key.rsplit("/", 1)[1]
    assert not (root / key).exists()
    assert not await storage.exists(key)
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.read(key))
    # No key reaches the partial file: it is no object, and no object can be stored under it.
    assert not await storage.exists(partial)
    with pytest.raises(ObjectNotFoundError):
        await storage.size(partial)
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.read(partial))
    await storage.delete(partial)
    assert all_files(root) == [partial]
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.upload(partial, chunked(b"x"))

    go_on.set()
    assert await task == len(data)
    assert all_files(root) == [key]
    assert await read_all(storage.read(key)) == data


@pytest.mark.parametrize("how", ["source fails", "cancelled", "storage fails"])
async def test_local_failures_leave_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    written, fail = asyncio.Event(), asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        yield random_bytes(MIB)
        written.set()
        await fail.wait()
        raise Boom

    if how == "storage fails":
        monkeypatch.setattr(storage_module, "_WRITEBACK_EVERY", 64 * 1024)

        def failing_fdatasync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(storage_module, "_fdatasync", failing_fdatasync)

        async def slow_source() -> AsyncIterator[bytes]:
            async for chunk in chunked(random_bytes(2 * MIB)):
                yield chunk
                await asyncio.sleep(0.001)

        with pytest.raises(StorageUnavailableError, match="Input/output error"):
            await storage.upload("originals/x", slow_source())
    else:
        task = asyncio.create_task(storage.upload("originals/x", source()))
        await asyncio.wait_for(written.wait(), timeout=30)
        await asyncio.sleep(0.05)
        assert len(all_files(root)) == 1  # the partial file
        if how == "cancelled":
            task.cancel()
        else:
            fail.set()
        with pytest.raises(asyncio.CancelledError if how == "cancelled" else Boom):
            await task

    assert all_files(root) == []
    assert not await storage.exists("originals/x")


async def test_local_upload_writes_back_early_and_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    monkeypatch.setattr(storage_module, "_WRITEBACK_EVERY", MIB)
    writebacks: list[int] = []
    fsynced: list[str] = []
    real_fsync = os.fsync

    def counting_fdatasync(fd: int) -> None:
        os.fdatasync(fd)
        writebacks.append(fd)

    def recording_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(str(root)):  # not whatever else the process may be doing
            fsynced.append(path)
        real_fsync(fd)

    monkeypatch.setattr(storage_module, "_fdatasync", counting_fdatasync)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    data = random_bytes(12 * MIB + 5, seed=4)
    key = f"archives/{uuid4()}/{uuid4()}"

    async def paced() -> AsyncIterator[bytes]:  # as from a network: writebacks keep up
        async for chunk in chunked(data):
            yield chunk
            await asyncio.sleep(0.002)

    assert await storage.upload(key, paced()) == len(data)

    assert 3 <= len(writebacks) <= 12
    # The file before its rename, then its directory and the two directories made for it.
    assert PARTIAL.fullmatch(Path(fsynced[0]).name)
    assert sorted(fsynced[1:]) == sorted(
        str(root / part) for part in ["", "archives", key.rsplit("/", 1)[0]]
    )
    assert (root / key).read_bytes() == data
    assert all_files(root) == [key]


async def test_local_cancel_waits_for_the_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    monkeypatch.setattr(storage_module, "_WRITEBACK_EVERY", MIB)
    in_writeback, writeback_done = threading.Event(), threading.Event()

    def slow_fdatasync(fd: int) -> None:
        in_writeback.set()
        time.sleep(0.3)
        os.fstat(fd)  # the file must still be open
        writeback_done.set()

    monkeypatch.setattr(storage_module, "_fdatasync", slow_fdatasync)

    async def source() -> AsyncIterator[bytes]:
        yield random_bytes(2 * MIB)
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    task = asyncio.create_task(storage.upload("originals/w", source()))
    await asyncio.to_thread(in_writeback.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writeback_done.is_set()
    assert all_files(root) == []


async def test_local_directory_removed_during_upload_is_storage_unavailable(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)

    async def source() -> AsyncIterator[bytes]:
        yield b"abc"
        shutil.rmtree(root / "originals")
        yield b"def"

    with pytest.raises(StorageUnavailableError):
        await storage.upload("originals/gone", source())
    assert all_files(root) == []


ODD_KEYS = [
    "plain",
    "originals/0199b3a4-5e6f-7a8b-9c0d-e1f2a3b4c5d6",
    "/leading/slash",
    "trailing/slash/",
    "with space",
    "percent%41",
    "brackets[x]{y}",
    "hash#",
    "hash#x1",
    "a#b#12",
    "tilde~/star*/question?/colon:x",
    "drive:/like",
    "unicod\u00e9/\u65e5\u672c",
    "back\\slash",
    ".hidden",
    ".looks.like.part",
    "x" * 240,
]
INVALID_KEYS = [
    "",
    "/",
    "//",
    "a//b",
    ".",
    "a/../b",
    "a/./b",
    "control\x01",
    "delete\x7f",
    "staged#1",
    "ends/like/a/drive:",
    "pipe|",
    "archives/.obj.0123456789abcdef.part",
]


async def test_local_keys_map_to_the_files_of_obstore_local_store(tmp_path: Path) -> None:
    ours = local_storage(tmp_path / "ours")
    reference = LocalStore(tmp_path / "reference", mkdir=True)
    for index, key in enumerate(ODD_KEYS):
        data = f"{index}".encode()
        await ours.upload(key, chunked(data))
        await obstore.put_async(reference, key, data, use_multipart=True)
        assert await read_all(ours.read(key)) == data, key
        assert await ours.size(key) == len(data), key
    stored = all_files(tmp_path / "ours")
    assert stored == all_files(tmp_path / "reference")
    listed = [item["path"] for batch in obstore.list(reference) for item in batch]
    assert len(listed) == len(ODD_KEYS)

    for key in INVALID_KEYS:
        with pytest.raises(ValueError, match="invalid storage key"):
            await ours.upload(key, chunked(b"x"))
        if not key.endswith(".part"):  # a valid key to obstore, but not an object here
            with pytest.raises((ValueError, ObstoreError)):
                await obstore.put_async(reference, key, b"x", use_multipart=True)
    assert all_files(tmp_path / "ours") == stored


async def test_local_files_get_the_permissions_local_store_gives(tmp_path: Path) -> None:
    await local_storage(tmp_path / "ours").upload("a/b", chunked(b"x"))
    reference = LocalStore(tmp_path / "reference", mkdir=True)
    await obstore.put_async(reference, "a/b", b"x")
    for path in ["a", "a/b"]:
        mode = (tmp_path / "ours" / path).stat().st_mode
        assert mode == (tmp_path / "reference" / path).stat().st_mode, path


async def test_remove_stale_partials_deletes_only_old_partial_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    day_ago = time.time() - 86400
    await storage.upload("originals/kept", chunked(b"object"))
    stale = [
        "originals/.a.0123456789abcdef.part",
        f"archives/{uuid4()}/.{uuid4()}.fedcba9876543210.part",
        ".top.00000000000000ff.part",
    ]
    fresh = ["originals/.b.0123456789abcdef.part"]
    # Objects and files whose names merely resemble partial files stay.
    lookalikes = ["originals/.notes.part", "originals/c.0123456789abcdef.part", ".x.1234.part"]
    for name in stale + fresh + lookalikes:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"partial")
    for name in [*stale, *lookalikes]:
        os.utime(root / name, (day_ago, day_ago))

    assert await storage.remove_stale_partials(timedelta(hours=1)) == len(stale)
    assert all_files(root) == sorted(["originals/kept", *fresh, *lookalikes])
    assert await storage.remove_stale_partials(timedelta(hours=1)) == 0
    assert await storage.remove_stale_partials(timedelta(0)) == 1
    assert all_files(root) == sorted(["originals/kept", *lookalikes])
    with pytest.raises(ValueError, match="negative"):
        await storage.remove_stale_partials(timedelta(seconds=-1))


async def test_remove_stale_partials_is_a_no_op_on_s3(moto: MotoS3) -> None:
    storage = Storage.from_settings(
        StorageSettings(url=f"s3://{BUCKET}/test-{uuid4().hex}", **moto.storage_options())
    )
    await storage.upload("originals/s", chunked(b"object"))
    assert await storage.remove_stale_partials(timedelta(0)) == 0
    assert await storage.exists("originals/s")


KILLED_UPLOAD = """
import asyncio, sys
from instashare.storage import Storage, StorageSettings

async def source():
    yield b"x" * 1024 * 1024
    print("writing", flush=True)
    await asyncio.Event().wait()
    yield b""

storage = Storage.from_settings(StorageSettings(url=sys.argv[1]))
asyncio.run(storage.upload("originals/killed", source()))
"""


async def test_an_upload_killed_mid_way_leaves_only_a_stale_partial(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = local_storage(root)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_UPLOAD, root.as_uri()], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert await asyncio.to_thread(process.stdout.readline) == b"writing\n"
    finally:
        process.kill()  # SIGKILL: no cleanup runs
        await asyncio.to_thread(process.wait)
        process.stdout.close()  # type: ignore[union-attr]

    [partial] = all_files(root)
    assert PARTIAL.fullmatch(partial.split("/")[-1])
    assert not await storage.exists("originals/killed")
    assert await storage.remove_stale_partials(timedelta(hours=1)) == 0  # just written
    assert await storage.remove_stale_partials(timedelta(0)) == 1
    assert all_files(root) == []


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:relative/store", "file://./relative/store", "relative/store"]
)
async def test_relative_local_paths_resolve_against_the_working_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = Storage.from_settings(StorageSettings(url=url))
    monkeypatch.chdir("/")  # the root must not follow later changes of directory

    await storage.upload("originals/x", chunked(b"abc"))

    assert (tmp_path / "relative" / "store" / "originals" / "x").read_bytes() == b"abc"


async def test_localhost_file_urls_and_escapes(tmp_path: Path) -> None:
    root = tmp_path / "with space"
    storage = Storage.from_settings(StorageSettings(url=f"file://localhost{root.as_uri()[7:]}"))
    await storage.upload("k", chunked(b"abc"))
    assert (root / "k").read_bytes() == b"abc"


def test_s3_without_endpoint_or_keys_defers_to_aws_defaults() -> None:
    # No request is made here: AWS endpoint and credentials are resolved when first used.
    assert isinstance(Storage.from_settings(StorageSettings(url="s3://bucket/prefix")), Storage)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket", "unsupported"),
        ("s3://", "needs a bucket"),
        ("file://", "names no directory"),
    ],
)
def test_invalid_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Storage.from_settings(StorageSettings(url=url))


@pytest.mark.parametrize(
    "overrides",
    [
        {"part_size": 5 * MIB - 1},
        {"part_size": 6 * 1024 * MIB},
        {"upload_concurrency": 0},
        {"connect_timeout": 0},
        {"request_timeout": -1},
        {"max_retries": -1},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        StorageSettings(url="file:///tmp", **overrides)
