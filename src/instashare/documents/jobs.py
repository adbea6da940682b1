"""The documents' background jobs: compress every upload, and put right what a crash left behind.

Registered with the workers through :data:`JOBS` (see :mod:`instashare.worker.runner`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from saq import CronJob
from saq.job import Status
from saq.queue import Queue

from instashare.config import Settings
from instashare.documents.compression import INTERRUPTED_TOO_OFTEN, Compressor
from instashare.logs import get_logger
from instashare.worker.queue import JobContext, JobSet

log = get_logger(__name__)
COMPRESS = "compress"
# A partial upload file this old belongs to a process that died mid-upload.
STALE_PARTIAL_AGE = timedelta(hours=6)


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


async def enqueue_compress(queue: Queue, document_id: UUID, settings: Settings) -> bool:
    """Queue the document's compression; False when a job for it is already queued or running."""
    job = await queue.enqueue(
        COMPRESS,
        key=f"{COMPRESS}:{document_id}",
        document_id=str(document_id),
        **compress_job_options(settings),
    )
    return job is not None


async def enqueue_after_upload(queue: Queue | None, document_id: UUID, settings: Settings) -> None:
    """Queue compression of a committed upload; if that fails the recovery job queues it later."""
    if queue is None:
        log.warning(
            "job queue not connected; compression will be queued by recovery",
            document_id=str(document_id),
        )
        return
    try:
        await enqueue_compress(queue, document_id, settings)
    except Exception:
        log.exception("could not enqueue compression", document_id=str(document_id))


def _compressor(ctx: JobContext) -> Compressor:
    return Compressor.from_settings(ctx["settings"], ctx["sessions"], ctx["storage"])


async def compress(ctx: JobContext, *, document_id: str) -> str:
    job = ctx["job"]
    outcome = await _compressor(ctx).run(
        UUID(document_id),
        last_attempt=job.attempts >= job.retries,
        heartbeat=job.update,
    )
    return outcome.value


async def requeue_stuck_documents(ctx: JobContext) -> int:
    """Re-enqueue documents nobody is working on: a lost enqueue, a worker killed mid-job."""
    requeued = 0
    for document_id in await _compressor(ctx).unfinished():
        if await enqueue_compress(ctx["queue"], document_id, ctx["settings"]):
            requeued += 1
    if requeued:
        log.info("re-enqueued stuck documents", count=requeued)
    return requeued


async def remove_leftover_originals(ctx: JobContext) -> int:
    """Originals of ready documents whose compression job died before removing them."""
    compressor = _compressor(ctx)
    leftovers = await compressor.leftover_originals()
    for document in leftovers:
        await compressor.remove_original(document)
    if leftovers:
        log.info("removed originals left behind by compression", count=len(leftovers))
    return len(leftovers)


async def remove_stale_partials(ctx: JobContext) -> int:
    """Partial upload files of processes killed mid-upload (local storage only)."""
    removed = await ctx["storage"].remove_stale_partials(older_than=STALE_PARTIAL_AGE)
    if removed:
        log.info("removed partial uploads left by dead processes", count=removed)
    return removed


async def fail_after_last_attempt(ctx: JobContext) -> None:
    """A compression job that will not run again leaves its document ``failed``, with a reason."""
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
        await _compressor(ctx).mark_failed(document_id, error)


JOBS = JobSet(
    functions=[compress, requeue_stuck_documents, remove_leftover_originals, remove_stale_partials],
    cron_jobs=[
        CronJob(requeue_stuck_documents, cron="* * * * *", timeout=50, retries=1),
        CronJob(remove_leftover_originals, cron="* * * * *", timeout=50, retries=1),
        # Walks the whole local store, so hourly rather than with every recovery pass.
        CronJob(remove_stale_partials, cron="17 * * * *", timeout=3000, retries=1),
    ],
    after_process=fail_after_last_attempt,
)
