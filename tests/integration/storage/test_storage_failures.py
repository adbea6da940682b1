"""Storage failures surface as StorageUnavailableError, quickly."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from tests.conftest import S3_BUCKET as BUCKET
from tests.integration.storage.support import (
    EndlessChunks,
    chunked,
    random_bytes,
    read_all,
    unreachable_s3_storage,
)
from tests.s3_server import MotoS3

from instashare.storage import MIB, Storage, StorageSettings, StorageUnavailableError
from instashare.storage import base as storage_base


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
    monkeypatch.setattr(storage_base, "_PROBE_TIMEOUT_SECONDS", 0.5)
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
