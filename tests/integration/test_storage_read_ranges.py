"""Storage.read_ranges: many small ranges at once, locally and on S3 (moto over HTTP)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from tests.conftest import S3_BUCKET
from tests.s3_server import MotoS3

from instashare.storage import ObjectNotFoundError, Storage, StorageSettings


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return Storage.from_settings(StorageSettings(url=(tmp_path / "store").as_uri()))
    s3: MotoS3 = request.getfixturevalue("moto")
    url = f"s3://{S3_BUCKET}/read-small-{uuid4().hex}"
    return Storage.from_settings(StorageSettings(url=url, **s3.storage_options()))


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_reads_exactly_the_ranges_in_order(storage: Storage) -> None:
    first = random.Random(3).randbytes(300_000)
    second = random.Random(4).randbytes(1000)
    await storage.upload("archives/a/1", once(first))
    await storage.upload("archives/b", once(second))
    found = await storage.read_ranges(
        [
            ("archives/b", 10, 20),
            ("archives/a/1", 0, 1),
            ("archives/a/1", 1234, 5000),
            ("archives/a/1", 299_990, 10),
            ("archives/b", 0, 1000),
        ]
    )
    assert found == [second[10:30], first[:1], first[1234:6234], first[-10:], second]
    assert await storage.read_ranges([]) == []


async def test_a_missing_object_is_not_found(storage: Storage) -> None:
    await storage.upload("archives/present", once(b"here"))
    with pytest.raises(ObjectNotFoundError):
        await storage.read_ranges([("archives/present", 0, 4), ("archives/missing", 0, 10)])


@pytest.mark.parametrize(("start", "length"), [(-1, 5), (0, 0), (3, -2)])
async def test_nonsense_ranges_are_refused(storage: Storage, start: int, length: int) -> None:
    with pytest.raises(ValueError, match="start"):
        await storage.read_ranges([("archives/x", start, length)])
