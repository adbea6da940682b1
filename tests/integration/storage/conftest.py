"""The backends every storage test runs against: a local directory and S3 (moto over real HTTP)."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from tests.conftest import S3_BUCKET as BUCKET
from tests.integration.storage.support import PART_SIZE, Backend, all_files, unreachable_s3_storage
from tests.s3_server import MotoS3

from instashare.storage import Storage, StorageSettings


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


@pytest.fixture(params=["file", "s3"])
def failing(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, str]:
    """A storage and key whose writes fail inside the backend."""
    if request.param == "file":
        (tmp_path / "blocker").write_bytes(b"")  # a file where a directory is needed
        return Storage.from_settings(StorageSettings(url=tmp_path.as_uri())), "blocker/x"
    return unreachable_s3_storage(max_retries=0), "originals/x"
