"""Background jobs on SAQ's Postgres queue: compress every upload, recover what got stuck.

The queue lives in the service's own database (tables ``saq_*``, kept out of Alembic), so a
deployment needs nothing but Postgres and object storage. Workers run in ``instashare worker``
processes, and inside ``instashare serve`` unless ``--no-worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

from litestar import Litestar
from saq import CronJob, Worker
from saq.job import Status
from saq.queue import Queue as BaseQueue
from saq.queue.postgres import PostgresQueue
from saq.types import Context, PartialTimersDict
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from instashare.config import Settings
from instashare.documents.compression import INTERRUPTED_TOO_OFTEN, Compressor
from instashare.logs import configure_logging, get_logger
from instashare.storage import Storage

log = get_logger(__name__)
QUEUE_NAME = "instashare"
COMPRESS = "compress"
SWEEP_EVERY_SECONDS = 10
# How long a stuck job of a dead worker waits before it is requeued, per job (SAQ's default 5 s
# is spent one job after another).
SWEEP_ABORT_SECONDS = 1.5
# A partial upload file this old belongs to a process that died mid-upload.
STALE_PARTIAL_AGE = timedelta(hours=6)


class Queue(PostgresQueue):
    """SAQ's Postgres queue, minus a way to lose the sweep lock without noticing.

    SAQ takes the sweep lock (a session advisory lock) on a pooled connection and remembers it
    forever; when the pool recycles that connection the lock is gone, and two processes would
    sweep, requeueing each other's running jobs. Check the lock is still held before trusting it.
    """

    _sweep_lock_backend: int | None = None

    async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_SECONDS) -> list[str]:
        async with self.pool.connection() as connection:
            if self._has_sweep_lock:
                cursor = await connection.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = %s AND classid = %s::oid AND objid = hashtext(%s)::oid"
                    " AND objsubid = 2)",
                    (self._sweep_lock_backend, self.saq_lock_keyspace, self.name),
                )
                row = await cursor.fetchone()
                self._has_sweep_lock = bool(row and row[0])
            if not self._has_sweep_lock:
                cursor = await connection.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                    (self.saq_lock_keyspace, self.name),
                )
                row = await cursor.fetchone()
                if not (row and row[0]):
                    return []
                self._has_sweep_lock = True
                self._sweep_lock_backend = connection.info.backend_pid
        swept: list[str] = await super().sweep(lock, abort)
        return swept


SWEEP_TIMERS = cast("PartialTimersDict", {"sweep": SWEEP_EVERY_SECONDS})


class JobContext(Context, total=False):
    settings: Settings
    engine: AsyncEngine
    compressor: Compressor


def make_queue(settings: Settings) -> Queue:
    # SAQ speaks libpq (psycopg): the same database under a plain postgresql:// DSN.
    return Queue(
        url=settings.sync_database_url,
        name=QUEUE_NAME,
        min_size=2,
        max_size=settings.worker_concurrency + 4,
    )


def compress_job_options(settings: Settings) -> dict[str, Any]:
    return {
        # No wall-clock limit (SAQ's default is 10 s): a big file takes as long as it takes; a
        # dead worker is noticed through the heartbeat instead.
        "timeout": 0,
        "heartbeat": settings.compress_heartbeat_seconds,
        "retries": settings.compress_max_attempts,
        "retry_delay": settings.compress_retry_delay_seconds,
        "retry_backoff": settings.compress_retry_backoff_max_seconds,
        "ttl": 24 * 3600,
    }


async def enqueue_compress(queue: BaseQueue, document_id: UUID, settings: Settings) -> bool:
    """Queue the document's compression; False when a job for it is already queued or running."""
    job = await queue.enqueue(
        COMPRESS,
        key=f"{COMPRESS}:{document_id}",
        document_id=str(document_id),
        **compress_job_options(settings),
    )
    return job is not None


async def compress(ctx: JobContext, *, document_id: str) -> str:
    job = ctx["job"]
    outcome = await ctx["compressor"].run(
        UUID(document_id),
        last_attempt=job.attempts >= job.retries,
        heartbeat=job.update,
    )
    return outcome.value


async def recover_stuck_documents(ctx: JobContext) -> int:
    """Re-enqueue documents nobody is working on: a lost enqueue, a worker killed mid-job."""
    compressor = ctx["compressor"]
    requeued = 0
    for document_id in await compressor.unfinished():
        if await enqueue_compress(ctx["queue"], document_id, ctx["settings"]):
            requeued += 1
    if requeued:
        log.info("re-enqueued stuck documents", count=requeued)
    for document in await compressor.leftover_originals():
        await compressor.remove_original(document)
    return requeued


async def remove_stale_partials(ctx: JobContext) -> int:
    """Partial upload files of processes killed mid-upload (local storage only)."""
    removed = await ctx["compressor"].storage.remove_stale_partials(older_than=STALE_PARTIAL_AGE)
    if removed:
        log.info("removed partial uploads left by dead processes", count=removed)
    return removed


async def after_process(ctx: JobContext) -> None:
    job = ctx["job"]
    if job.function != COMPRESS:
        return
    # A swept job is ABORTED even when it will be retried; only a non-retryable end is final.
    if job.status == Status.FAILED or (job.status == Status.ABORTED and not job.retryable):
        if job.status == Status.ABORTED:
            error = INTERRUPTED_TOO_OFTEN
        else:
            error = f"compression failed after {job.attempts} attempts"
        document_id = UUID((job.kwargs or {})["document_id"])
        await ctx["compressor"].mark_failed(document_id, error)


def make_worker(queue: Queue, settings: Settings) -> Worker[JobContext]:
    async def startup(ctx: JobContext) -> None:
        engine = create_async_engine(settings.database_url, pool_pre_ping=True)
        ctx["engine"] = engine
        ctx["settings"] = settings
        ctx["queue"] = queue
        ctx["compressor"] = Compressor(
            async_sessionmaker(engine, expire_on_commit=False),
            Storage.from_settings(settings.storage_settings()),
            level=settings.compression_level,
            max_attempts=settings.compress_max_attempts,
            lease=timedelta(seconds=settings.compress_heartbeat_seconds * 3 / 4),
        )

    async def shutdown(ctx: JobContext) -> None:
        await ctx["engine"].dispose()

    worker: Worker[JobContext] = Worker(
        queue,
        functions=[compress, recover_stuck_documents, remove_stale_partials],
        concurrency=settings.worker_concurrency,
        cron_jobs=[
            CronJob(recover_stuck_documents, cron="* * * * *", timeout=50, retries=1),
            # Walks the whole local store, so hourly rather than with every recovery pass.
            CronJob(remove_stale_partials, cron="17 * * * *", timeout=3000, retries=1),
        ],
        startup=startup,
        shutdown=shutdown,
        after_process=after_process,
        timers=SWEEP_TIMERS,
        shutdown_grace_period_s=settings.worker_shutdown_grace_seconds,
    )
    return worker


async def _serve_workers(settings: Settings) -> None:
    queue = make_queue(settings)
    await queue.connect()
    try:
        # Worker.start() returns on SIGINT/SIGTERM after letting running jobs finish or requeue.
        await make_worker(queue, settings).start()
    finally:
        await queue.disconnect()


def run_workers(settings: Settings) -> int:
    configure_logging(settings)
    log.info("workers starting", concurrency=settings.worker_concurrency, queue=QUEUE_NAME)
    asyncio.run(_serve_workers(settings))
    return 0


@contextlib.asynccontextmanager
async def queue_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The app's queue for enqueueing, and (unless disabled) workers in the same process.

    Connecting happens in the background, so the API serves (and /health reports) even while
    the database is unreachable; uploads made meanwhile are picked up by the recovery job.
    """
    settings: Settings = app.state.settings
    queue = make_queue(settings)
    app.state.queue = None
    worker: Worker[JobContext] | None = None

    async def connect_and_work() -> None:
        nonlocal worker
        delay = 1.0
        while True:
            try:
                await queue.connect()
                break
            except Exception as exc:
                log.warning("job queue unavailable; retrying", error=repr(exc), in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        app.state.queue = queue
        if settings.run_workers_in_process:
            worker = make_worker(queue, settings)
            # The server owns SIGINT/SIGTERM; the worker is stopped from this lifespan instead.
            worker.SIGNALS = []
            try:
                await worker.start()
            except Exception:
                log.exception("in-process workers stopped; uploads wait for other workers")

    task = asyncio.create_task(connect_and_work())
    try:
        yield
    finally:
        if worker is not None:
            await worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await queue.disconnect()
