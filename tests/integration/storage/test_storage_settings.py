"""Building a storage from settings: URLs and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.integration.storage.support import chunked

from instashare.storage import MIB, Storage, StorageSettings


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
