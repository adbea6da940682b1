from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from instashare.app import create_app
from instashare.config import Settings
from instashare.database_setup import upgrade_to_head
from tests.s3_server import MotoS3, moto_s3_server
from tests.support.api import auth_headers
from tests.support.database import test_database
from tests.support.server import running_server

S3_BUCKET = "instashare-test"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        context = test_database(tmp_path_factory.mktemp("postgres"))
        url = context.__enter__()
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=2)
    try:
        yield url
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    upgrade_to_head(database_url)
    return database_url


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoS3]:
    """A local S3 server (moto) over real HTTP, with the test bucket created."""
    with moto_s3_server() as s3:
        s3.create_bucket(S3_BUCKET)
        yield s3


@pytest.fixture(scope="session")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="session")
def make_settings(migrated_database_url: str, storage_root: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "instashare_env": "test",
            "database_url": migrated_database_url,
            "storage_url": storage_root.as_uri(),
            "auth_rate_limit_per_minute": 10_000,
            # Integration tests drive compression themselves; end-to-end tests run workers.
            "run_workers_in_process": False,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def server_url(settings: Settings) -> Iterator[str]:
    with running_server(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def start_server() -> Callable[[Settings], AbstractContextManager[str]]:
    """For tests that need an app with settings of their own."""
    return lambda settings: running_server(create_app(settings))


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        yield http


@pytest.fixture
async def headers(client: httpx.AsyncClient) -> dict[str, str]:
    """The bearer header of a fresh account, one per test."""
    return await auth_headers(client)


@pytest.fixture(scope="session")
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    db = create_async_engine(migrated_database_url)
    yield db
    await db.dispose()
