"""Alembic environment: async engine (asyncpg), migrations run through ``connection.run_sync``.

Safe from any number of processes at once (see instashare.migration_safety): an online run holds
the migration advisory lock throughout, each revision runs in its own transaction that starts
with a short lock_timeout, and a revision whose lock wait timed out is retried with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from instashare.config import Settings
from instashare.migration_safety import (
    IN_CALLER_TRANSACTION,
    MIGRATION_APPLICATION_NAME,
    MigrationLimits,
    MigrationProgress,
    acquire_migration_lock,
    guard_steps,
    is_read_only_command,
    migrate_with_retries,
    release_migration_lock,
    watching_lock_waits,
)
from instashare.models import metadata

config = context.config

# The plain `alembic` command logs its progress ("Running upgrade ..."); a program that runs
# migrations itself (instashare serve) keeps its own logging and says so.
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Tables owned by other software in the same database (the job queue keeps its own schema).
EXTERNAL_TABLE_PREFIXES = ("saq_",)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    table_name = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    if str(table_name).startswith(EXTERNAL_TABLE_PREFIXES):
        return False
    return _created_on_this_dialect(obj)


def _created_on_this_dialect(obj: Any) -> bool:
    # Some library models declare per-dialect DDL with ddl_if (for example a unique index on one
    # dialect, a unique constraint on the others); autogenerate must honour the same choice.
    ddl_if = getattr(obj, "_ddl_if", None)
    if ddl_if is None:
        return True
    dialect = context.get_context().dialect
    if ddl_if.dialect is not None and dialect.name not in (
        [ddl_if.dialect] if isinstance(ddl_if.dialect, str) else ddl_if.dialect
    ):
        return False
    return ddl_if.callable_ is None or bool(ddl_if.callable_(obj, dialect=dialect))


def database_url() -> str:
    # A program that runs migrations itself (instashare serve, the tests) passes the URL it
    # decided on; the plain `alembic` command reads DATABASE_URL (environment or .env), as the
    # service does.
    handed_in: str | None = config.attributes.get("database_url")
    return handed_in or Settings().database_url


def migration_limits() -> MigrationLimits:
    # As for the URL: a program passes the values it decided on, the plain command reads
    # MIGRATION_LOCK_TIMEOUT_SECONDS and MIGRATION_DDL_LOCK_TIMEOUT.
    handed_in: MigrationLimits | None = config.attributes.get("migration_limits")
    return handed_in or Settings().migration_limits()


def command_name() -> str | None:
    # Set by the `alembic` command line only; programs that call alembic.command change things.
    command = getattr(config.cmd_opts, "cmd", None)
    return getattr(command[0], "__name__", None) if command else None


CONFIGURE_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "compare_type": True,
    "compare_server_default": True,
    "include_object": include_object,
    # Custom column types render as advanced_alchemy.types.X, imported by script.py.mako.
    "user_module_prefix": "advanced_alchemy.types.",
}


def configure(progress: MigrationProgress, limits: MigrationLimits, **options: Any) -> None:
    context.configure(transaction_per_migration=True, **options, **CONFIGURE_OPTIONS)
    migration_context = context.get_context()
    # The command's own list of steps (upgrade, downgrade, stamp...) is the one place that sees
    # every revision, online and offline: wrap it so each revision's transaction starts with
    # its lock_timeout and a database at an unknown revision is refused with a clear message.
    command_steps = migration_context._migrations_fn
    if command_steps is not None:
        migration_context._migrations_fn = guard_steps(
            command_steps, context.script, limits, progress
        )


def run_migrations_offline() -> None:
    configure(
        MigrationProgress(),
        migration_limits(),
        url=database_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(
    connection: Connection, limits: MigrationLimits, progress: MigrationProgress
) -> None:
    configure(progress, limits, connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_serialized(
    connection: Connection, limits: MigrationLimits, progress: MigrationProgress
) -> None:
    """On a connection of our own: hold the migration lock throughout, retry lock timeouts."""
    if is_read_only_command(command_name()):
        do_run_migrations(connection, limits, progress)
        connection.commit()
        return
    acquire_migration_lock(connection, limits.lock_wait_seconds)
    try:
        migrate_with_retries(connection, migrate(limits, progress), limits, progress)
    finally:
        release_migration_lock(connection)


def migrate(limits: MigrationLimits, progress: MigrationProgress) -> Callable[[Connection], None]:
    return lambda connection: do_run_migrations(connection, limits, progress)


async def run_async_migrations(engine: AsyncEngine, *, dispose: bool) -> None:
    limits, progress = migration_limits(), MigrationProgress()
    try:
        async with engine.connect() as connection:
            if is_read_only_command(command_name()):
                await connection.run_sync(run_serialized, limits, progress)
                return
            # The lock first, then the watcher's connection: waiting processes hold only one.
            await connection.run_sync(acquire_migration_lock, limits.lock_wait_seconds)
            try:
                pid = await connection.scalar(text("SELECT pg_backend_pid()"))
                await connection.commit()
                # A second connection notes which table a timed-out statement waited for.
                async with watching_lock_waits(engine, int(pid), progress):
                    await connection.run_sync(
                        migrate_with_retries, migrate(limits, progress), limits, progress
                    )
            finally:
                await connection.run_sync(release_migration_lock)
    finally:
        if dispose:
            await engine.dispose()


def run_migrations_online() -> None:
    # A caller (a test harness, or code that already holds a connection) may hand one in.
    handed_in = config.attributes.get("connection")
    if handed_in is None:
        engine = create_async_engine(
            database_url(),
            poolclass=pool.NullPool,
            connect_args={"server_settings": {"application_name": MIGRATION_APPLICATION_NAME}},
        )
        asyncio.run(run_async_migrations(engine, dispose=True))
    elif isinstance(handed_in, AsyncEngine):
        asyncio.run(run_async_migrations(handed_in, dispose=False))
    elif isinstance(handed_in, Engine):
        with handed_in.connect() as connection:
            run_serialized(connection, migration_limits(), MigrationProgress())
    elif isinstance(handed_in, Connection):
        # The caller's own connection, maybe inside its own transaction: the caller serializes
        # its runs and owns their transactions, so neither the lock nor retries apply here.
        config.attributes[IN_CALLER_TRANSACTION] = handed_in.in_transaction()
        do_run_migrations(handed_in, migration_limits(), MigrationProgress())
    else:
        # An engine-like wrapper whose connect() yields the caller's open connection (as
        # pytest-alembic's experimental tests pass): the caller's connection, as above.
        with handed_in.connect() as connection:
            config.attributes[IN_CALLER_TRANSACTION] = connection.in_transaction()
            do_run_migrations(connection, migration_limits(), MigrationProgress())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
