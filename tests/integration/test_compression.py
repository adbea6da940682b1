"""Compression of one document and its download, with the job run in the test process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tests.support.documents import stored_objects, unzip_single, uploaded

from instashare.config import Settings
from instashare.db import session_maker
from instashare.documents.compression import Compressor, Outcome
from instashare.models import Document, DocumentStatus
from instashare.storage import Storage


def storage_from(settings: Settings) -> Storage:
    return Storage.from_settings(settings.storage_settings())


def compressor_for(settings: Settings, engine: AsyncEngine, storage: Storage) -> Compressor:
    """Built as the workers build it, with the given (possibly instrumented) storage."""
    return Compressor.from_settings(settings, session_maker(engine), storage)


@pytest.fixture
def compressor(engine: AsyncEngine, settings: Settings) -> Compressor:
    return compressor_for(settings, engine, storage_from(settings))


async def row(engine: AsyncEngine, document_id: str) -> Document:
    async with AsyncSession(engine) as session:
        document = await session.get(Document, UUID(document_id))
        assert document is not None
        return document


async def set_claim(engine: AsyncEngine, document_id: UUID, claim: UUID, expires: str) -> None:
    """As if a worker held the document, with its lease ending at the SQL time ``expires``."""
    async with engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(
                status=DocumentStatus.PROCESSING, claim_token=claim, lease_expires_at=text(expires)
            )
        )


async def test_compress_then_download_the_exact_bytes(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    compressor: Compressor,
    engine: AsyncEngine,
    storage_root: Path,
) -> None:
    content = os.urandom(200_000) + b"compressible text " * 50_000
    document = await uploaded(client, headers, content=content, filename="mixed.bin")
    path = f"/api/documents/{document['id']}"

    not_ready = await client.get(f"{path}/download", headers=headers)
    assert not_ready.status_code == 409
    assert not_ready.json()["status"] == "pending"
    assert "pending" in not_ready.json()["detail"]

    assert await compressor.run(UUID(document["id"]), last_attempt=True) == Outcome.COMPRESSED
    ready = (await client.get(path, headers=headers)).json()
    assert ready["status"] == "ready"
    assert ready["compressed_at"] is not None
    assert 0 < ready["compressed_size"] < len(content)
    # The original is removed once the archive is recorded; the archive alone remains.
    remaining = {o for o in stored_objects(storage_root) if document["id"] in o}
    assert len(remaining) == 1
    assert next(iter(remaining)).startswith(f"archives/{document['id']}/")

    response = await client.get(f"{path}/download", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == 'attachment; filename="mixed.bin.zip"'
    assert unzip_single(response.content) == ("mixed.bin", content)
    # The stored archive is a valid ZIP in its own right.
    stored = (storage_root / next(iter(remaining))).read_bytes()
    assert unzip_single(stored) == ("mixed.bin", content)
    assert len(stored) == ready["compressed_size"]

    # Running the job again for a ready document changes nothing.
    assert await compressor.run(UUID(document["id"]), last_attempt=True) == Outcome.ALREADY_READY
    assert (await client.get(path, headers=headers)).json() == ready


async def test_rename_changes_the_entry_name_without_recompressing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    compressor: Compressor,
    storage_root: Path,
) -> None:
    content = b"hello, archive\n" * 1000
    document = await uploaded(client, headers, content=content, filename="before.txt")
    await compressor.run(UUID(document["id"]), last_attempt=True)
    path = f"/api/documents/{document['id']}"
    first = await client.get(f"{path}/download", headers=headers)
    [archive_path] = [o for o in stored_objects(storage_root) if document["id"] in o]
    stored_before = (storage_root / archive_path).read_bytes()

    renamed = await client.patch(path, headers=headers, json={"name": "après été.txt"})
    assert renamed.json()["compressed_size"] == document["size"] or renamed.status_code == 200
    second = await client.get(f"{path}/download", headers=headers)
    assert unzip_single(second.content) == ("après été.txt", content)
    assert second.headers["etag"] != first.headers["etag"]
    assert second.headers["content-disposition"] == (
        'attachment; filename="apres ete.txt.zip"; '
        "filename*=UTF-8''apr%C3%A8s%20%C3%A9t%C3%A9.txt.zip"
    )
    # Same stored object, untouched.
    assert [o for o in stored_objects(storage_root) if document["id"] in o] == [archive_path]
    assert (storage_root / archive_path).read_bytes() == stored_before


async def test_ranges_and_conditional_requests(
    client: httpx.AsyncClient, headers: dict[str, str], compressor: Compressor
) -> None:
    content = os.urandom(50_000)
    document = await uploaded(client, headers, content=content, filename="r.bin")
    await compressor.run(UUID(document["id"]), last_attempt=True)
    url = f"/api/documents/{document['id']}/download"
    full = await client.get(url, headers=headers)
    etag = full.headers["etag"]
    size = len(full.content)

    part = await client.get(url, headers={**headers, "Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == full.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    assert part.headers["content-length"] == "1000"

    tail = await client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.content == full.content[-10:]

    # Resuming: the rest of the archive after a cut.
    resumed = await client.get(url, headers={**headers, "Range": "bytes=30000-", "If-Range": etag})
    assert full.content[:30000] + resumed.content == full.content

    stale = await client.get(url, headers={**headers, "Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.content == full.content

    outside = await client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{size}"

    cached = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag

    changed = await client.get(url, headers={**headers, "If-None-Match": '"something-else"'})
    assert changed.status_code == 200


async def test_a_deleted_document_loses_its_archive_too(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    compressor: Compressor,
    storage_root: Path,
) -> None:
    document = await uploaded(client, headers, content=b"bye" * 1000)
    await compressor.run(UUID(document["id"]), last_attempt=True)
    assert any(document["id"] in o for o in stored_objects(storage_root))
    deleted = await client.delete(f"/api/documents/{document['id']}", headers=headers)
    assert deleted.status_code == 204
    assert not any(document["id"] in o for o in stored_objects(storage_root))
    assert await compressor.run(UUID(document["id"]), last_attempt=True) == Outcome.GONE


async def test_delete_racing_a_running_job_leaves_no_object(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
    storage_root: Path,
) -> None:
    document = await uploaded(client, headers, content=os.urandom(3_000_000))
    document_id = UUID(document["id"])
    started, release = asyncio.Event(), asyncio.Event()
    storage = storage_from(settings)
    original_read = storage.read

    async def slow_read(key: str, **kwargs: object) -> AsyncIterator[bytes]:
        async for chunk in original_read(key, **kwargs):  # type: ignore[arg-type]
            started.set()
            await release.wait()
            yield chunk

    storage.read = slow_read  # type: ignore[method-assign]
    compressor = compressor_for(settings, engine, storage)
    job = asyncio.create_task(compressor.run(document_id, last_attempt=True))
    await started.wait()
    assert (
        await client.delete(f"/api/documents/{document['id']}", headers=headers)
    ).status_code == 204
    release.set()
    assert await job == Outcome.GONE
    assert not any(document["id"] in o for o in stored_objects(storage_root))


async def test_a_lapsed_claim_is_taken_over_and_a_live_one_is_not(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    compressor: Compressor,
    engine: AsyncEngine,
) -> None:
    document = await uploaded(client, headers)
    document_id = UUID(document["id"])
    await set_claim(engine, document_id, UUID(int=1), "now() - interval '1 minute'")
    # The claim lapsed long ago: another job takes over.
    assert document_id in await compressor.unfinished()
    assert await compressor.run(document_id, last_attempt=True) == Outcome.COMPRESSED

    second = await uploaded(client, headers)
    await set_claim(engine, UUID(second["id"]), UUID(int=2), "now() + interval '1 hour'")
    assert await compressor.run(UUID(second["id"]), last_attempt=True) == (
        Outcome.IN_PROGRESS_ELSEWHERE
    )
    assert UUID(second["id"]) not in await compressor.unfinished()


async def test_failures_release_the_claim_then_fail_on_the_last_attempt(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    document = await uploaded(client, headers)
    document_id = UUID(document["id"])
    storage = storage_from(settings)

    async def broken_read(key: str, **kwargs: object) -> AsyncIterator[bytes]:
        raise OSError("disk on fire")
        yield b""  # pragma: no cover

    storage.read = broken_read  # type: ignore[method-assign]
    compressor = compressor_for(settings, engine, storage)
    with pytest.raises(OSError, match="disk on fire"):
        await compressor.run(document_id, last_attempt=False)
    retrying = await row(engine, document["id"])
    assert retrying.status == DocumentStatus.PENDING
    assert retrying.claim_token is None
    with pytest.raises(OSError, match="disk on fire"):
        await compressor.run(document_id, last_attempt=True)
    failed = (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()
    assert failed["status"] == "failed"
    assert failed["error"] == "compression failed: an internal error occurred"


async def test_a_missing_original_fails_at_once(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    compressor: Compressor,
    storage_root: Path,
) -> None:
    document = await uploaded(client, headers)
    (storage_root / "originals" / document["id"]).unlink()
    assert await compressor.run(UUID(document["id"]), last_attempt=False) == Outcome.FAILED
    failed = (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()
    assert failed["status"] == "failed"
    assert "missing" in failed["error"]


async def test_a_document_that_keeps_killing_its_worker_ends_failed(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine, settings: Settings
) -> None:
    document = await uploaded(client, headers)
    document_id = UUID(document["id"])
    settings = settings.model_copy(update={"compress_max_attempts": 2})
    compressor = compressor_for(settings, engine, storage_from(settings))
    # Two claims taken by workers that died (their leases lapsed): no third attempt.
    for dead_claim in (3, 4):
        await set_claim(engine, document_id, UUID(int=dead_claim), "now() - interval '1 minute'")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE document SET compress_attempts = compress_attempts + 1 WHERE id = :id"
                ),
                {"id": document_id},
            )
    assert await compressor.run(document_id, last_attempt=False) == Outcome.FAILED
    failed = (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()
    assert failed["status"] == "failed"
    assert failed["error"] == "compression failed: the job was interrupted too many times"


async def test_an_interrupted_attempt_is_handed_back_and_not_counted(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine, settings: Settings
) -> None:
    document = await uploaded(client, headers, content=os.urandom(2_000_000))
    document_id = UUID(document["id"])
    storage = storage_from(settings)
    original_read = storage.read
    reading = asyncio.Event()

    async def stalled_read(key: str, **kwargs: object) -> AsyncIterator[bytes]:
        async for chunk in original_read(key, **kwargs):  # type: ignore[arg-type]
            reading.set()
            await asyncio.sleep(3600)
            yield chunk

    storage.read = stalled_read  # type: ignore[method-assign]
    compressor = compressor_for(settings, engine, storage)
    job = asyncio.create_task(compressor.run(document_id, last_attempt=False))
    await reading.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    handed_back = await row(engine, document["id"])
    assert handed_back.status == DocumentStatus.PENDING
    assert handed_back.claim_token is None
    assert handed_back.compress_attempts == 0
