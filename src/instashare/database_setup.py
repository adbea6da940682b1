"""Getting a database ready: create it if missing, migrate it, wait for its schema, or run one.

Everything here is synchronous on purpose: it runs before the server's event loop exists.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from instashare.logs import get_logger
from instashare.migration_safety import MigrationLimits

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


async def connect(database_url: str | URL, *, database: str | None = None) -> asyncpg.Connection:
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
            existing = await connect(url)
        except asyncpg.InvalidCatalogNameError:
            pass
        else:
            await existing.close()
            return False
        connection = await connect(url, database="postgres")
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                return False
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                await connection.execute(f"CREATE DATABASE {quoted}")
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another process starting at the same moment created it first.
                return False
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


def upgrade_to_head(database_url: str, limits: MigrationLimits | None = None) -> None:
    """``alembic upgrade head``, serialized with every other process that migrates."""
    config = alembic_config()
    # env.py takes these from here; the plain `alembic` command gives none, so the settings.
    config.attributes["database_url"] = database_url
    config.attributes["migration_limits"] = limits or MigrationLimits()
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        # Lock waits that ran out, a database at a revision this code does not know.
        raise DatabaseSetupError(str(exc)) from exc
    except (OSError, DBAPIError) as exc:
        raise DatabaseSetupError(f"cannot migrate the database: {exc}") from exc


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against this code's migrations."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)

    def why_not_ready(self) -> str:
        if self.unknown:
            return (
                f"the database is at revision {', '.join(self.unknown)}, which this code does "
                "not know (a newer release migrated it); run the matching release"
            )
        if not self.current:
            return "the database has no schema yet; waiting for `alembic upgrade head`"
        return (
            f"the database is at revision {', '.join(self.current)}, this code needs "
            f"{', '.join(self.heads)}; waiting for `alembic upgrade head`"
        )


def schema_state(database_url: str, script: ScriptDirectory | None = None) -> SchemaState:
    """Read the database's revision(s) and compare them with this code's head(s)."""
    script = script or ScriptDirectory.from_config(alembic_config())
    url = make_url(database_url)

    async def read_versions() -> tuple[str, ...]:
        connection = await connect(url)
        try:
            rows = await connection.fetch("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return ()
        finally:
            await connection.close()
        return tuple(sorted(row["version_num"] for row in rows))

    current = asyncio.run(read_versions())
    known = {revision.revision for revision in script.walk_revisions()}
    return SchemaState(
        current=current,
        heads=tuple(sorted(script.get_heads())),
        unknown=tuple(revision for revision in current if revision not in known),
    )


def wait_for_schema_at_head(
    database_url: str, poll_seconds: float = 1.0, log_every_seconds: float = 5.0
) -> SchemaState:
    """Block until the database is at this code's head; never migrates. Says why it waits."""
    script = ScriptDirectory.from_config(alembic_config())
    last_logged, last_reason = -math.inf, ""
    while True:
        try:
            state = schema_state(database_url, script)
            if state.at_head:
                return state
            reason = state.why_not_ready()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = f"cannot reach the database: {exc}"
        now = time.monotonic()
        if reason != last_reason or now - last_logged >= log_every_seconds:
            log.info("waiting for the database schema", reason=reason)
            last_logged, last_reason = now, reason
        time.sleep(poll_seconds)


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
