"""Getting a database ready before serving: create it if missing, migrate it, or run a private one.

Everything here is synchronous on purpose: it runs before the server's event loop exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from instashare.logs import get_logger

log = get_logger(__name__)
POSTGRES_BINARY_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class DatabaseSetupError(RuntimeError):
    """The database cannot be reached or prepared; the message says what to do."""


def is_listening(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def connect(database_url: str, *, database: str | None = None) -> asyncpg.Connection:
    """A plain asyncpg connection to the URL's server: its database, or ``database`` instead."""
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=database or url.database,
        timeout=10,
    )


def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database through the server's ``postgres`` database; True if created."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise DatabaseSetupError(f"DATABASE_URL names no database: {url!r}")

    async def create() -> bool:
        # A managed database may let the service reach only its own database: try it first.
        try:
            existing = await connect(database_url)
        except asyncpg.InvalidCatalogNameError:
            pass
        else:
            await existing.close()
            return False
        connection = await connect(database_url, database="postgres")
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                return False
            quoted = '"' + name.replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
            return True
        finally:
            await connection.close()

    try:
        return asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseSetupError(
            f"cannot reach PostgreSQL at {url.host}:{url.port}: {exc}"
        ) from exc


def alembic_config() -> Config:
    """The repository's ``alembic.ini``, found from the working directory or the source tree."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        ini = root / "alembic.ini"
        if ini.is_file():
            return Config(str(ini))
    raise DatabaseSetupError("alembic.ini not found: run from the repository root")


def upgrade_to_head(database_url: str) -> None:
    config = alembic_config()
    # env.py takes the URL from here; the plain `alembic` command gives none, so DATABASE_URL.
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def find_postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in POSTGRES_BINARY_DIRS:
        candidate = directory / name
        if candidate.is_file():
            return str(candidate)
    return None


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL cluster in a directory of ours, for machines without a database."""

    data_dir: Path
    port: int = 5432
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{self.host}:{self.port}/postgres"

    @staticmethod
    def available() -> bool:
        return bool(find_postgres_binary("initdb") and find_postgres_binary("pg_ctl"))

    def _run(self, *args: str) -> None:
        cmd = list(args)
        # PostgreSQL refuses to run as root; run it as the postgres account when we are root.
        if os.geteuid() == 0:
            shutil.chown(self.data_dir.parent, user="postgres")
            # runuser lives in sbin, which a non-login PATH may lack.
            runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            if runuser is None:
                raise DatabaseSetupError("PostgreSQL cannot run as root and runuser is missing")
            cmd = [runuser, "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)  # noqa: S603

    def start(self) -> None:
        initdb, pg_ctl = find_postgres_binary("initdb"), find_postgres_binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise DatabaseSetupError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not (self.data_dir / "PG_VERSION").exists():
                self._run(
                    initdb,
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                )
            options = f"-p {self.port} -h {self.host} -k {self.data_dir}"
            log_file = str(self.data_dir.parent / "postgres.log")
            self._run(
                pg_ctl, "-D", str(self.data_dir), "-o", options, "-l", log_file, "-w", "start"
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or b"").decode(errors="replace").strip()
            raise DatabaseSetupError(
                f"could not start PostgreSQL in {self.data_dir}: {detail}"
            ) from exc
        log.info(
            "started a private PostgreSQL cluster", data_dir=str(self.data_dir), port=self.port
        )

    def stop(self) -> None:
        pg_ctl = find_postgres_binary("pg_ctl")
        if pg_ctl and (self.data_dir / "postmaster.pid").exists():
            self._run(pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
