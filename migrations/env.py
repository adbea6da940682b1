"""Alembic environment: async engine (asyncpg), migrations run through ``connection.run_sync``."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from instashare.config import Settings
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


CONFIGURE_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "compare_type": True,
    "compare_server_default": True,
    "include_object": include_object,
    # Custom column types render as advanced_alchemy.types.X, imported by script.py.mako.
    "user_module_prefix": "advanced_alchemy.types.",
}


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **CONFIGURE_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(engine: AsyncEngine, *, dispose: bool) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    if dispose:
        await engine.dispose()


def run_migrations_online() -> None:
    # A caller (a test harness, or code that already holds a connection) may hand one in.
    handed_in = config.attributes.get("connection")
    if handed_in is None:
        engine = create_async_engine(database_url(), poolclass=pool.NullPool)
        asyncio.run(run_async_migrations(engine, dispose=True))
    elif isinstance(handed_in, AsyncEngine):
        asyncio.run(run_async_migrations(handed_in, dispose=False))
    elif isinstance(handed_in, Engine):
        with handed_in.connect() as connection:
            do_run_migrations(connection)
            connection.commit()
    else:
        do_run_migrations(handed_in)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
