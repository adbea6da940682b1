"""Removing what uploads left behind when their process died."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from tests.conftest import S3_BUCKET as BUCKET
from tests.integration.storage.support import PARTIAL, all_files, chunked, local_storage
from tests.s3_server import MotoS3

from instashare.storage import Storage, StorageSettings


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
