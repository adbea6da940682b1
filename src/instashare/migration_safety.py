"""Running Alembic migrations safely from any number of processes at once.

``migrations/env.py`` puts these pieces around every online run:

- one PostgreSQL *session* advisory lock (``MIGRATION_LOCK_KEY``) held on the migration
  connection from before the first revision to after the last, so concurrent upgrades apply
  each revision once; a session lock outlives the per-revision commits and the
  ``autocommit_block()`` that ``CREATE INDEX CONCURRENTLY`` needs;
- a ``SET LOCAL lock_timeout`` at the start of each revision's transaction (offline SQL too),
  so a statement never queues live traffic behind it for longer than that;
- retries with backoff for a revision whose lock wait timed out, and a final message naming the
  table it waited for, seen by a second connection while the wait was happening.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from alembic.runtime.migration import MigrationContext, MigrationStep, RevisionStep
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The ASCII bytes of "instmigr" read as one signed bigint: pg_advisory_lock(7597136565309630322).
MIGRATION_LOCK_KEY = 7_597_136_565_309_630_322
# How the migration connection shows up in pg_stat_activity, and so in our own messages.
MIGRATION_APPLICATION_NAME = "instashare-migrate"
LOCK_POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 5.0
WATCH_POLL_SECONDS = 0.1
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout that ran out
# `alembic` commands that only read: they never wait for (or hold) the migration lock.
READ_ONLY_COMMANDS = frozenset({"current", "check", "revision"})

# Set in Alembic's config attributes when env.py runs on a connection whose transaction belongs
# to the caller (a test harness that rolls every step back): nothing can leave that transaction.
IN_CALLER_TRANSACTION = "instashare_in_caller_transaction"

# The logger the plain `alembic` command prints at INFO (alembic.ini's [logger_alembic]).
log = logging.getLogger("alembic.env")


@dataclass(frozen=True)
class MigrationLimits:
    """How long to wait for another migration, and for each lock a revision's DDL needs."""

    lock_wait_seconds: float = 300.0
    ddl_lock_timeout_seconds: float = 5.0
    ddl_attempts: int = 4

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th (1-based) timed-out try: doubling."""
        return float(self.ddl_lock_timeout_seconds * 2 ** (attempt - 1))

    @property
    def lock_timeout_statement(self) -> str:
        milliseconds = max(1, round(self.ddl_lock_timeout_seconds * 1000))
        return f"SET LOCAL lock_timeout = '{milliseconds}ms'"


class MigrationLockTimeout(CommandError):
    """Another process held the migration lock for longer than MIGRATION_LOCK_TIMEOUT_SECONDS."""


class MigrationGaveUp(CommandError):
    """A revision's DDL kept timing out on a lock held by live traffic."""


class UnknownRevision(CommandError):
    """The database is at a revision this code does not have: a newer release migrated it."""


@dataclass
class LockWait:
    """What the migration connection was waiting for, as seen from the watching connection."""

    table: str | None
    blockers: tuple[str, ...]


@dataclass
class MigrationProgress:
    """Shared by the revision wrapper, the watcher and the retry loop of one run."""

    revision: str | None = None
    doc: str = ""
    lock_wait: LockWait | None = None


def is_read_only_command(command_name: str | None) -> bool:
    return command_name in READ_ONLY_COMMANDS


def unknown_revision_message(revision: str) -> str:
    return (
        f"the database is at revision {revision}, which this code does not know: a newer "
        "release has migrated it. Deploy that release again, or downgrade the database with "
        "it (its `alembic downgrade <revision>`) before running this one."
    )


def guard_steps(
    command_steps: Callable[[Any, MigrationContext], Iterable[MigrationStep]],
    script: ScriptDirectory,
    limits: MigrationLimits,
    progress: MigrationProgress,
) -> Callable[[Any, MigrationContext], Iterator[MigrationStep]]:
    """Wrap a command's list of steps: refuse unknown revisions, bound every lock wait."""

    def steps(heads: Any, migration_context: MigrationContext) -> Iterator[MigrationStep]:
        for head in heads or ():
            try:
                script.revision_map.get_revision(head)
            except ResolutionError as exc:
                raise UnknownRevision(unknown_revision_message(head)) from exc
        for step in command_steps(heads, migration_context):
            if isinstance(step, RevisionStep):
                step.migration_fn = _bounded(step, migration_context, limits, progress)
            yield step

    return steps


def _bounded(
    step: RevisionStep,
    migration_context: MigrationContext,
    limits: MigrationLimits,
    progress: MigrationProgress,
) -> Callable[..., None]:
    run_revision = step.migration_fn

    @functools.wraps(run_revision)  # alembic names the step after it ("Running upgrade ...")
    def run(**kw: Any) -> None:
        if progress.revision != step.revision.revision:
            # A retry keeps what earlier attempts of this revision were seen waiting for.
            progress.revision, progress.doc = step.revision.revision, step.revision.doc or ""
            progress.lock_wait = None
        # Inside this revision's own transaction (transaction_per_migration): it ends with it.
        migration_context.execute(limits.lock_timeout_statement)
        run_revision(**kw)

    return run


def acquire_migration_lock(connection: Connection, wait_seconds: float) -> None:
    """Take the session advisory lock, polling (so no waiting statement holds a snapshot)."""
    deadline = time.monotonic() + wait_seconds
    next_log = time.monotonic()
    while True:
        acquired = connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        connection.commit()
        if acquired:
            return
        now = time.monotonic()
        if now >= deadline:
            holder = describe_lock_holder(connection)
            raise MigrationLockTimeout(
                f"another migration held the migration lock ({holder}) for longer than "
                f"MIGRATION_LOCK_TIMEOUT_SECONDS={wait_seconds:g}; gave up waiting. Let it "
                "finish (or, if nothing is migrating, end that session with "
                "pg_terminate_backend) and start again."
            )
        if now >= next_log:
            log.info("waiting for the migration lock held by %s", describe_lock_holder(connection))
            next_log = now + LOG_EVERY_SECONDS
        time.sleep(min(LOCK_POLL_SECONDS, max(0.0, deadline - now)))


def describe_lock_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, host(a.client_addr) AS client "
            "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low"
        ),
        {"high": MIGRATION_LOCK_KEY >> 32, "low": MIGRATION_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    connection.commit()
    if row is None:
        return "a session that has just let go of it"
    name, client = row.application_name or "no application name", row.client or "local socket"
    return f"pid {row.pid}, {name}, {client}"


def release_migration_lock(connection: Connection) -> None:
    try:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
    except DBAPIError:
        # A broken connection's session is gone, and its lock with it.
        log.warning("could not release the migration lock; it ends with the connection")


def is_lock_timeout(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def migrate_with_retries(
    connection: Connection,
    migrate: Callable[[Connection], None],
    limits: MigrationLimits,
    progress: MigrationProgress,
) -> None:
    """Run ``migrate``; a revision whose lock wait timed out is rolled back and tried again."""
    for attempt in range(1, limits.ddl_attempts + 1):
        try:
            migrate(connection)
            connection.commit()
            return
        except DBAPIError as exc:
            if not is_lock_timeout(exc):
                raise
            if connection.in_transaction():
                connection.rollback()
            if attempt == limits.ddl_attempts:
                raise MigrationGaveUp(gave_up_message(connection, exc, limits, progress)) from exc
            delay = limits.retry_delay(attempt)
            log.warning(
                "revision %s waited %gs for %s; retrying in %gs (attempt %d of %d)",
                progress.revision,
                limits.ddl_lock_timeout_seconds,
                _what_it_waited_for(progress, exc),
                delay,
                attempt + 1,
                limits.ddl_attempts,
            )
            time.sleep(delay)


def gave_up_message(
    connection: Connection, exc: DBAPIError, limits: MigrationLimits, progress: MigrationProgress
) -> str:
    try:
        versions = connection.scalars(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # no version table yet: the very first revision gave up
        versions = []
    connection.rollback()
    current = ", ".join(sorted(versions)) or "base"
    total = limits.ddl_attempts * limits.ddl_lock_timeout_seconds + sum(
        limits.retry_delay(attempt) for attempt in range(1, limits.ddl_attempts)
    )
    return (
        f"revision {progress.revision} ({progress.doc}) gave up after {limits.ddl_attempts} "
        f"attempts over {total:g}s: {_what_it_waited_for(progress, exc)}. Each attempt waited "
        f"MIGRATION_DDL_LOCK_TIMEOUT={limits.ddl_lock_timeout_seconds:g}s for it. The database "
        f"stays at revision {current}; end or wait out the blocking session, then upgrade again."
    )


def _what_it_waited_for(progress: MigrationProgress, exc: DBAPIError) -> str:
    wait = progress.lock_wait
    if wait is not None and wait.table:
        held_by = f" held by {'; '.join(wait.blockers)}" if wait.blockers else ""
        return f'a lock on table "{wait.table}"{held_by}'
    statement = " ".join(str(exc.statement or "").split())
    return f"a lock needed by: {statement[:120]}" if statement else "a lock"


# The migration connection's ungranted lock, the table it is on (a row lock's table comes from
# the tuple lock it holds), and who blocks it.
LOCK_WAIT_QUERY = text(
    """
    SELECT coalesce(waiting.relation, tuple_lock.relation)::regclass::text AS table_name,
           blocker.pid AS blocker_pid, blocker.state, blocker.application_name
    FROM pg_locks AS waiting
    LEFT JOIN pg_locks AS tuple_lock
           ON tuple_lock.pid = waiting.pid AND tuple_lock.locktype = 'tuple'
    LEFT JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocking(pid) ON true
    LEFT JOIN pg_stat_activity AS blocker ON blocker.pid = blocking.pid
    WHERE waiting.pid = :pid AND NOT waiting.granted
    """
)


async def _watch(connection: AsyncConnection, pid: int, progress: MigrationProgress) -> None:
    while True:
        rows = (await connection.execute(LOCK_WAIT_QUERY, {"pid": pid})).all()
        if rows:
            blockers = tuple(
                f"pid {row.blocker_pid} ({row.state or 'unknown state'}, "
                f"{row.application_name or 'no application name'})"
                for row in rows
                if row.blocker_pid is not None
            )
            progress.lock_wait = LockWait(table=rows[0].table_name, blockers=blockers)
        await asyncio.sleep(WATCH_POLL_SECONDS)


@contextlib.asynccontextmanager
async def watching_lock_waits(
    engine: AsyncEngine, pid: int, progress: MigrationProgress
) -> AsyncIterator[None]:
    """Observe the migration connection's lock waits from a second, autocommit connection.

    Autocommit, so the watcher never holds a snapshot that CREATE INDEX CONCURRENTLY would
    wait for. A watcher that cannot connect only makes the final message less precise.
    """
    try:
        connection = await engine.connect()
    except (DBAPIError, OSError) as exc:
        log.warning("cannot watch lock waits: %s", exc)
        yield
        return
    try:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        task = asyncio.create_task(_watch(connection, pid, progress))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, DBAPIError, OSError):
                await task
    finally:
        await connection.close()


@contextlib.contextmanager
def outside_transaction(migration: MigrationContext) -> Iterator[bool]:
    """Where a revision runs what no transaction may hold (``CREATE INDEX CONCURRENTLY``).

    Normally an ``autocommit_block()``, yielding True: build concurrently. On a connection whose
    transaction belongs to the caller (see :data:`IN_CALLER_TRANSACTION`), the statements run in
    that transaction instead, yielding False: build the plain way, the caller rolls it back.
    """
    if migration.config is not None and migration.config.attributes.get(IN_CALLER_TRANSACTION):
        yield False
        return
    with migration.autocommit_block():
        yield True
