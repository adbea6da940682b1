"""The job queue in-process against the test database: enqueue, run, recover, give up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from saq.job import Job, Status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import uploaded

from instashare.config import Settings
from instashare.documents.jobs import (
    COMPRESS,
    enqueue_compress,
    fail_after_last_attempt,
    remove_leftover_originals,
    remove_stale_partials,
    requeue_stuck_documents,
)
from instashare.storage import Storage
from instashare.worker.queue import JobQueue, make_queue
from instashare.worker.runner import make_worker


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[JobQueue]:
    queue = make_queue(settings)
    await queue.connect()
    yield queue
    await queue.disconnect()


async def run_worker_until_idle(queue: JobQueue, settings: Settings, seconds: float = 8) -> None:
    worker = make_worker(queue, settings)
    worker.SIGNALS = []
    task = asyncio.create_task(worker.start())
    await asyncio.sleep(seconds)
    await worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def job_context(queue: JobQueue, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """The context a worker hands its jobs, set up and torn down by the worker's own hooks."""
    worker = make_worker(queue, settings)
    ctx: dict[str, Any] = {"worker": worker, "queue": queue}
    for startup in worker.startup or []:
        await startup(ctx)  # type: ignore[arg-type]
    try:
        yield ctx
    finally:
        for shutdown in [worker.shutdown] if callable(worker.shutdown) else worker.shutdown or []:
            await shutdown(ctx)  # type: ignore[arg-type]


async def age(engine: AsyncEngine, document_id: str, interval: str = "10 minutes") -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE document SET updated_at = now() - interval '{interval}' WHERE id = :id"),
            {"id": UUID(document_id)},
        )


async def test_a_document_is_queued_once_and_compressed_by_a_worker(
    client: httpx.AsyncClient, queue: JobQueue, settings: Settings
) -> None:
    headers = await auth_headers(client)
    document = await uploaded(client, headers, content=b"queued bytes " * 500)
    document_id = UUID(document["id"])
    # The API queued it already (its own queue connection); another enqueue is refused.
    assert await enqueue_compress(queue, document_id, settings) is False
    job = await queue.job(f"{COMPRESS}:{document_id}")
    assert job is not None
    assert job.status == Status.QUEUED

    await run_worker_until_idle(queue, settings, seconds=4)
    ready = (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()
    assert ready["status"] == "ready"
    job = await queue.job(f"{COMPRESS}:{document_id}")
    assert job is not None
    assert job.status == Status.COMPLETE
    assert job.result == "compressed"


async def test_recovery_requeues_stuck_documents(
    client: httpx.AsyncClient,
    queue: JobQueue,
    settings: Settings,
    engine: AsyncEngine,
    storage_root: Path,
) -> None:
    headers = await auth_headers(client)
    document = await uploaded(client, headers)
    key = f"{COMPRESS}:{document['id']}"
    # As if its enqueue had been lost: no job, and pending for a while.
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM saq_jobs WHERE key = :key"), {"key": key})
    await age(engine, document["id"])
    async with job_context(queue, settings) as ctx:
        assert await requeue_stuck_documents(ctx) >= 1  # type: ignore[arg-type]
        job = await queue.job(key)
        assert job is not None
        assert job.status == Status.QUEUED
        # A second pass does not queue it twice.
        before = await queue.count("queued")
        await requeue_stuck_documents(ctx)  # type: ignore[arg-type]
        assert await queue.count("queued") == before

        # A partial upload file left by a process killed hours ago is cleared; a fresh one stays.
        stale = storage_root / "originals" / f".{uuid4()}.0123456789abcdef.part"
        fresh = storage_root / "originals" / f".{uuid4()}.fedcba9876543210.part"
        stale.write_bytes(b"half")
        fresh.write_bytes(b"half")
        hours_ago = time.time() - 7 * 3600
        os.utime(stale, (hours_ago, hours_ago))
        assert await remove_stale_partials(ctx) == 1  # type: ignore[arg-type]
        assert not stale.exists()
        assert fresh.exists()
        fresh.unlink()


async def test_originals_left_behind_by_compression_are_removed(
    client: httpx.AsyncClient, queue: JobQueue, settings: Settings, engine: AsyncEngine
) -> None:
    headers = await auth_headers(client)
    document = await uploaded(client, headers)
    original = f"originals/{document['id']}"
    storage = Storage.from_settings(settings.storage_settings())
    assert await storage.exists(original)
    # As if a job had recorded the archive, then died before removing the original.
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE document SET status = 'ready' WHERE id = :id"),
            {"id": UUID(document["id"])},
        )
    async with job_context(queue, settings) as ctx:
        # Too recent: its job may still be about to remove it.
        assert await remove_leftover_originals(ctx) == 0  # type: ignore[arg-type]
        await age(engine, document["id"])
        assert await remove_leftover_originals(ctx) == 1  # type: ignore[arg-type]
        assert await remove_leftover_originals(ctx) == 0  # type: ignore[arg-type]
    assert not await storage.exists(original)
    async with engine.connect() as connection:
        key = await connection.scalar(
            text("SELECT original_key FROM document WHERE id = :id"), {"id": UUID(document["id"])}
        )
    assert key is None


async def test_a_final_failure_marks_the_document_failed(
    client: httpx.AsyncClient, queue: JobQueue, settings: Settings
) -> None:
    headers = await auth_headers(client)
    document = await uploaded(client, headers)
    async with job_context(queue, settings) as ctx:
        retrying = Job(COMPRESS, kwargs={"document_id": document["id"]}, status=Status.QUEUED)
        await fail_after_last_attempt({**ctx, "job": retrying})  # type: ignore[typeddict-item]
        assert (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()[
            "status"
        ] == "pending"
        swept = Job(
            COMPRESS,
            kwargs={"document_id": document["id"]},
            status=Status.ABORTED,
            error="swept",
            attempts=3,
            retries=3,
        )
        await fail_after_last_attempt({**ctx, "job": swept})  # type: ignore[typeddict-item]
        failed = (await client.get(f"/api/documents/{document['id']}", headers=headers)).json()
        assert failed["status"] == "failed"
        assert failed["error"] == "compression failed: the job was interrupted too many times"
        other = Job("requeue_stuck_documents", status=Status.FAILED)
        await fail_after_last_attempt({**ctx, "job": other})  # type: ignore[typeddict-item]
