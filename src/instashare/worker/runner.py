"""Worker processes and the API's queue: every domain's jobs, composed in one place.

Workers run in ``instashare worker`` processes, and inside ``instashare serve`` unless
``--no-worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import cast

from litestar import Litestar
from saq import Worker
from saq.types import PartialTimersDict

from instashare.config import Settings
from instashare.db import create_engine, session_maker
from instashare.documents import jobs as document_jobs
from instashare.logs import configure_logging, get_logger
from instashare.shares import jobs as share_jobs
from instashare.storage import Storage
from instashare.uploads import jobs as upload_jobs
from instashare.worker.queue import QUEUE_NAME, JobContext, JobQueue, JobSet, make_queue

log = get_logger(__name__)
# Every domain that has background work lists its jobs here.
JOB_SETS: tuple[JobSet, ...] = (document_jobs.JOBS, upload_jobs.JOBS, share_jobs.JOBS)
SWEEP_EVERY_SECONDS = 10
SWEEP_TIMERS = cast("PartialTimersDict", {"sweep": SWEEP_EVERY_SECONDS})
STOP_POLL_SECONDS = 0.05


class JobWorker(Worker[JobContext]):
    """SAQ's worker, minus a shutdown that always waits out the whole grace period.

    SAQ's stop() waits for every task it owns, and the idle ones never end on their own: the
    upkeep loops sleep between rounds (the sweep for 10 s) and the job slots wait for work. So
    even an idle worker took the whole grace period to stop, then logged a warning. Here only
    the jobs that are running get the grace period; what is left is idle and is cancelled.
    """

    async def stop(self) -> None:
        self.event.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._shutdown_grace_period_s or 0)
        # A job's entry goes once the job is finished and recorded, so its slot is idle then.
        # SAQ signals that by no event, hence the polling.
        while self.job_task_contexts and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(STOP_POLL_SECONDS)
        if not self.job_task_contexts:
            for task in self.tasks:
                task.cancel()
        # Jobs still running after the grace period are cancelled at once (and handed back).
        self._shutdown_grace_period_s = max(0, math.ceil(deadline - loop.time()))
        await super().stop()


def make_worker(
    queue: JobQueue, settings: Settings, job_sets: tuple[JobSet, ...] = JOB_SETS
) -> Worker[JobContext]:
    async def startup(ctx: JobContext) -> None:
        engine = create_engine(settings)
        ctx["engine"] = engine
        ctx["sessions"] = session_maker(engine)
        ctx["settings"] = settings
        ctx["queue"] = queue
        ctx["storage"] = Storage.from_settings(settings.storage_settings())

    async def shutdown(ctx: JobContext) -> None:
        await ctx["storage"].close()
        await ctx["engine"].dispose()

    async def after_process(ctx: JobContext) -> None:
        for job_set in job_sets:
            if job_set.after_process is not None:
                await job_set.after_process(ctx)

    return JobWorker(
        queue,
        functions=[function for job_set in job_sets for function in job_set.functions],
        concurrency=settings.worker_concurrency,
        cron_jobs=[cron for job_set in job_sets for cron in job_set.cron_jobs],
        startup=startup,
        shutdown=shutdown,
        after_process=after_process,
        timers=SWEEP_TIMERS,
        shutdown_grace_period_s=settings.worker_shutdown_grace_seconds,
    )


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


def queue_lifespan(
    settings: Settings,
) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan for its queue (to enqueue) and, when configured, in-process workers."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Connecting happens in the background, so the API serves (and /health reports) even
        # while the database is unreachable; uploads made meanwhile are picked up by recovery.
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
                    log.warning(
                        "job queue unavailable; retrying", error=repr(exc), in_seconds=delay
                    )
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

    return lifespan
