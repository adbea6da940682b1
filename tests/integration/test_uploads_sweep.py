"""The uploads' periodic job, completions that a crash interrupted, and bytes lost from storage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.tus import TUS, created, patch, upload_files

from instashare.config import Settings
from instashare.db import session_maker
from instashare.models import Upload, User
from instashare.storage import Storage
from instashare.uploads.jobs import sweep_uploads


def job_context(settings: Settings, engine: AsyncEngine) -> Any:
    return {
        "settings": settings,
        "engine": engine,
        "sessions": session_maker(engine),
        "storage": Storage.from_settings(settings.storage_settings()),
        "queue": None,
    }


async def reserved_bytes(engine: AsyncEngine, upload_id: UUID) -> int:
    async with engine.connect() as connection:
        owner = select(Upload.owner_id).where(Upload.id == upload_id).scalar_subquery()
        return int(await connection.scalar(select(User.bytes_reserved).where(User.id == owner)))


async def set_columns(engine: AsyncEngine, upload_id: UUID, assignments: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE upload SET {assignments} WHERE id = :id"), {"id": upload_id}
        )


async def test_expired_uploads_are_removed_with_their_bytes_and_reservation(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
    storage_root: Path,
) -> None:
    url = await created(client, headers, 100)
    upload_id = UUID(url.rsplit("/", 1)[1])
    assert (await patch(client, headers, url, 0, b"abc")).status_code == 204
    assert str(upload_id) in upload_files(storage_root)
    assert await reserved_bytes(engine, upload_id) == 100
    kept = UUID((await created(client, headers, 7)).rsplit("/", 1)[1])

    await set_columns(engine, upload_id, "expires_at = now() - interval '1 minute'")
    assert await sweep_uploads(job_context(settings, engine)) >= 1
    assert str(upload_id) not in upload_files(storage_root)
    async with engine.connect() as connection:
        assert await connection.scalar(select(Upload.id).where(Upload.id == upload_id)) is None
    assert await reserved_bytes(engine, kept) == 7  # only the live upload's reservation is left


async def test_a_complete_upload_whose_recording_was_interrupted_is_finished(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
    storage_root: Path,
) -> None:
    content = b"0123456789"
    urls = [await created(client, headers, len(content)) for _ in range(2)]
    for url in urls:
        assert (await patch(client, headers, url, 0, content[:4])).status_code == 204
        upload_id = UUID(url.rsplit("/", 1)[1])
        # As if the process died after storing the last bytes and recording the offset, but
        # before recording the document; without a hash state the file is hashed at the end.
        with (storage_root / "uploads" / str(upload_id)).open("ab") as file:
            file.write(content[4:])
        await set_columns(
            engine,
            upload_id,
            "upload_offset = length, sha256_state = NULL, updated_at = now() - interval '1 hour'",
        )
    by_head, by_job = urls

    head = await client.head(by_head, headers={**headers, **TUS})
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "10"
    document = (
        await client.get(f"/api/documents/{head.headers['document-id']}", headers=headers)
    ).json()
    assert document["sha256"] == hashlib.sha256(content).hexdigest()

    assert await sweep_uploads(job_context(settings, engine)) >= 1
    head = await client.head(by_job, headers={**headers, **TUS})
    document_id = head.headers["document-id"]
    assert (storage_root / "originals" / document_id).read_bytes() == content
    assert await reserved_bytes(engine, UUID(by_job.rsplit("/", 1)[1])) == 0


async def test_an_upload_whose_stored_bytes_vanished_is_removed_and_answers_410(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine, storage_root: Path
) -> None:
    url = await created(client, headers, 10)
    upload_id = UUID(url.rsplit("/", 1)[1])
    assert (await patch(client, headers, url, 0, b"01234")).status_code == 204
    (storage_root / "uploads" / str(upload_id)).unlink()  # a disk replaced, a wrong cleanup
    lost = await patch(client, headers, url, 5, b"56789")
    assert lost.status_code == 410
    assert "start a new upload" in lost.json()["detail"]
    assert (await client.head(url, headers={**headers, **TUS})).status_code == 404
    async with engine.connect() as connection:
        me = (await client.get("/api/auth/me", headers=headers)).json()
        reserved = await connection.scalar(
            select(User.bytes_reserved).where(User.id == UUID(me["id"]))
        )
    assert reserved == 0


async def test_a_hash_state_that_cannot_be_restored_falls_back_to_reading_back(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine
) -> None:
    url = await created(client, headers, 10)
    upload_id = UUID(url.rsplit("/", 1)[1])
    assert (await patch(client, headers, url, 0, b"01234")).status_code == 204
    await set_columns(engine, upload_id, "sha256_state = 'other-library/sha256:xyz'::bytea")
    last = await patch(client, headers, url, 5, b"56789")
    assert last.status_code == 204
    document = (
        await client.get(f"/api/documents/{last.headers['document-id']}", headers=headers)
    ).json()
    assert document["sha256"] == hashlib.sha256(b"0123456789").hexdigest()
