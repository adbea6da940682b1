"""The job queue (SAQ on the service's own Postgres) and what every job receives.

The queue lives in the service's own database (tables ``saq_*``, kept out of Alembic), so a
deployment needs nothing but Postgres and object storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from saq import CronJob
from saq.queue.postgres import PostgresQueue
from saq.types import Context
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from instashare.config import Settings
from instashare.storage import Storage

QUEUE_NAME = "instashare"
# How long a stuck job of a dead worker waits before it is requeued, per job (SAQ's default 5 s
# is spent one job after another).
SWEEP_ABORT_SECONDS = 1.5


class JobQueue(PostgresQueue):
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


def make_queue(settings: Settings) -> JobQueue:
    # SAQ speaks libpq (psycopg): the same database under a plain postgresql:// DSN.
    return JobQueue(
        url=settings.sync_database_url,
        name=QUEUE_NAME,
        min_size=2,
        max_size=settings.worker_concurrency + 4,
    )


class JobContext(Context, total=False):
    """What every job finds in its context, set up once per worker process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    storage: Storage


@dataclass(frozen=True)
class JobSet:
    """One domain's jobs: the functions a worker runs, its periodic jobs, and an end-of-job hook."""

    functions: Sequence[Callable[..., Awaitable[Any]]]
    cron_jobs: Sequence[CronJob[JobContext]] = ()
    # Called after every job (whatever its function); a hook picks out the jobs it cares about.
    after_process: Callable[[JobContext], Awaitable[None]] | None = None
