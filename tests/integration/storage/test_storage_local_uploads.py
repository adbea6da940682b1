"""The local backend writes uploads itself: partial files, durability, LocalStore's key rules."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import obstore
import pytest
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore
from tests.integration.storage.support import (
    PARTIAL,
    Boom,
    all_files,
    chunked,
    local_storage,
    random_bytes,
    read_all,
)

from instashare.storage import MIB, ObjectNotFoundError, StorageUnavailableError, partial_file


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
        monkeypatch.setattr(partial_file, "_WRITEBACK_EVERY", 64 * 1024)

        def failing_fdatasync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(partial_file, "_fdatasync", failing_fdatasync)

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
    monkeypatch.setattr(partial_file, "_WRITEBACK_EVERY", MIB)
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

    monkeypatch.setattr(partial_file, "_fdatasync", counting_fdatasync)
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
    monkeypatch.setattr(partial_file, "_WRITEBACK_EVERY", MIB)
    in_writeback, writeback_done = threading.Event(), threading.Event()

    def slow_fdatasync(fd: int) -> None:
        in_writeback.set()
        time.sleep(0.3)
        os.fstat(fd)  # the file must still be open
        writeback_done.set()

    monkeypatch.setattr(partial_file, "_fdatasync", slow_fdatasync)

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
