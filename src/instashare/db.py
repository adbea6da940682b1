"""Database wiring: the declarative base, the engine and advanced-alchemy's Litestar config."""

from __future__ import annotations

from advanced_alchemy.base import UUIDv7AuditBase, orm_registry
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import MetaData

from instashare.config import Settings

# advanced-alchemy's registry carries a constraint naming convention, so autogenerate names
# every index and constraint the same way on every run.
metadata: MetaData = orm_registry.metadata


class Base(UUIDv7AuditBase):
    """UUIDv7 primary key plus timezone-aware ``created_at``/``updated_at``."""

    __abstract__ = True


def alchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_pre_ping=True,
            echo=settings.database_echo,
            # Fail fast when the database is unreachable instead of hanging a request.
            connect_args={"timeout": 5, "command_timeout": 60},
        ),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        # The default handler never commits; commit on 2xx/3xx and roll back otherwise.
        before_send_handler="autocommit",
        alembic_config=AlembicAsyncConfig(script_location="migrations"),
        create_all=False,
        # instashare.errors maps repository errors, telling an outage (503) from a conflict.
        set_default_exception_handler=False,
    )
