"""The uploads' background jobs: finish completions a crash interrupted, remove expired uploads.

Registered with the workers through :data:`JOBS` (see :mod:`instashare.worker.runner`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from saq import CronJob
from sqlalchemy import select

from instashare.documents.jobs import enqueue_after_upload
from instashare.logs import get_logger
from instashare.uploads.models import Upload
from instashare.uploads.receiving import expire, finish_pending
from instashare.uploads.services import UploadPolicy
from instashare.worker.queue import JobContext, JobSet

log = get_logger(__name__)
# Uploads handled per run; a backlog is worked off a batch a minute.
BATCH: Final = 200
# A complete upload's own request finishes it; only one left alone this long was interrupted.
INTERRUPTED_AFTER: Final = timedelta(minutes=1)


async def sweep_uploads(ctx: JobContext) -> int:
    """Record the documents of complete uploads whose request died, then remove expired
    uploads: their stored bytes (partial files, S3 tails and multipart uploads), rows and
    quota reservations. Returns how many uploads it finished or removed."""
    now = datetime.now(UTC)
    async with ctx["sessions"]() as session:
        interrupted = (
            await session.scalars(
                select(Upload.id)
                .where(
                    Upload.completed_at.is_(None),
                    Upload.upload_offset == Upload.length,
                    Upload.updated_at < now - INTERRUPTED_AFTER,
                    Upload.expires_at > now,
                )
                .limit(BATCH)
            )
        ).all()
        expired = (
            await session.scalars(
                select(Upload.id)
                .where(Upload.expires_at <= now)
                .order_by(Upload.expires_at)
                .limit(BATCH)
            )
        ).all()
    engine, storage, settings = ctx["engine"], ctx["storage"], ctx["settings"]
    policy = UploadPolicy.from_settings(settings)
    finished = removed = 0
    for upload_id in interrupted:
        upload = await finish_pending(engine, storage, upload_id, policy)
        if upload is not None:
            finished += 1
            await enqueue_after_upload(ctx.get("queue"), upload.document_id, settings)
    for upload_id in expired:
        try:
            if await expire(engine, storage, upload_id):
                removed += 1
        except Exception:  # one failing removal must not stop the others; retried next run
            log.exception("could not remove an expired upload", upload_id=str(upload_id))
    if finished or removed:
        log.info("swept uploads", finished=finished, expired=removed)
    return finished + removed


JOBS = JobSet(
    functions=[sweep_uploads],
    cron_jobs=[CronJob(sweep_uploads, cron="* * * * *", timeout=50, retries=1)],
)
