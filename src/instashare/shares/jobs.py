"""The shares' periodic clean-up, registered with the workers through :data:`JOBS`."""

from __future__ import annotations

from datetime import timedelta

from saq import CronJob
from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from instashare.logs import get_logger
from instashare.shares.models import Share, ShareDownload
from instashare.throttle import remove_ended_windows
from instashare.worker.queue import JobContext, JobSet

log = get_logger(__name__)
# Deleted in batches, so no statement holds many row locks (or runs long) at once.
BATCH = 500
# Ended throttle windows are kept a little, for whoever looks into an attack after the fact.
THROTTLE_RETENTION = timedelta(hours=1)


async def remove_expired_shares(engine: AsyncEngine, grace: timedelta) -> int:
    """Shares that expired more than ``grace`` ago, with their receipts (cascade)."""
    removed = 0
    while True:
        batch = (
            select(Share.id)
            .where(Share.expires_at < func.now() - literal(grace))
            .limit(BATCH)
            .scalar_subquery()
        )
        async with engine.begin() as connection:
            result = await connection.execute(delete(Share).where(Share.id.in_(batch)))
        count = int(result.rowcount or 0)
        removed += count
        if count < BATCH:
            return removed


async def close_stale_downloads(engine: AsyncEngine, resume_window: timedelta) -> int:
    """Partial downloads idle past the resume window can no longer be resumed or counted."""
    statement = (
        update(ShareDownload)
        .where(
            ShareDownload.is_open, ShareDownload.updated_at < func.now() - literal(resume_window)
        )
        .values(is_open=False, updated_at=ShareDownload.updated_at)
    )
    async with engine.begin() as connection:
        result = await connection.execute(statement)
    return int(result.rowcount or 0)


async def sweep_shares(ctx: JobContext) -> dict[str, int]:
    settings, engine = ctx["settings"], ctx["engine"]
    outcome = {
        "expired_shares": await remove_expired_shares(
            engine, timedelta(days=settings.share_sweep_grace_days)
        ),
        "stale_downloads": await close_stale_downloads(
            engine, timedelta(hours=settings.share_resume_window_hours)
        ),
        "throttle_counters": await remove_ended_windows(engine, THROTTLE_RETENTION),
    }
    if any(outcome.values()):
        log.info("swept shares", **outcome)
    return outcome


JOBS = JobSet(
    functions=[sweep_shares],
    cron_jobs=[CronJob(sweep_shares, cron="*/10 * * * *", timeout=600, retries=1)],
)
