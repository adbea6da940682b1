"""What the storage tests share: backends under test, data to store, what is left behind."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import S3_BUCKET as BUCKET
from tests.s3_server import MotoS3
from tests.support.ports import free_port

from instashare.storage import MIB, Storage, StorageSettings

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


def unreachable_s3_storage(**overrides: Any) -> Storage:
    return Storage.from_settings(
        StorageSettings(
            url=f"s3://{BUCKET}",
            s3_endpoint=f"http://127.0.0.1:{free_port()}",  # nothing listens there
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
            **overrides,
        )
    )


class EndlessChunks:
    """A plain async iterator (no aclose), as opposed to an async generator."""

    def __aiter__(self) -> EndlessChunks:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)
        return random_bytes(64 * 1024)


PARTIAL = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{16}\.part")


def local_storage(root: Path) -> Storage:
    return Storage.from_settings(StorageSettings(url=root.as_uri()))
