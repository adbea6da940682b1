"""Database wiring: the declarative base, the one engine builder and advanced-alchemy's config."""

from __future__ import annotations

from advanced_alchemy.base import UUIDv7AuditBase, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sqlalchemy_async_engine

from instashare.config import Settings

# advanced-alchemy's registry carries a constraint naming convention, so autogenerate names
# every index and constraint the same way on every run.
metadata: MetaData = orm_registry.metadata
# Fail fast when the database is unreachable instead of hanging a request or a job.
CONNECT_TIMEOUT_SECONDS = 5
COMMAND_TIMEOUT_SECONDS = 60


class Base(UUIDv7AuditBase):
    """UUIDv7 primary key plus timezone-aware ``created_at``/``updated_at``."""

    __abstract__ = True


def create_engine(settings: Settings) -> AsyncEngine:
    """The engine of every process (API and workers alike): same pool, same timeouts."""
    return sqlalchemy_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=True,
        echo=settings.database_echo,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": COMMAND_TIMEOUT_SECONDS,
        },
    )


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for code outside a request (jobs): objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alchemy_config(engine: AsyncEngine) -> SQLAlchemyAsyncConfig:
    """advanced-alchemy's request sessions over ``engine`` (which the app disposes at shutdown)."""
    return SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        # The default handler never commits; commit on 2xx/3xx and roll back otherwise.
        before_send_handler="autocommit",
        alembic_config=AlembicAsyncConfig(script_location="migrations"),
        create_all=False,
        # instashare.errors maps repository errors, telling an outage (503) from a conflict.
        set_default_exception_handler=False,
    )
