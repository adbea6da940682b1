"""Migrations started from many processes at once, and next to live traffic: the real `alembic`.

Each test runs `python -m alembic` in subprocesses against its own scratch database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from tests.support.database import scratch_database
from tests.unit.test_migration_lint import squawk

from instashare.migration_safety import MIGRATION_LOCK_KEY

ROOT = Path(__file__).resolve().parents[2]
# Pinned revisions, so later ones do not change what these tests exercise.
BEFORE_ATTEMPTS = "671422df6d8f"  # track compressed archives and job claims
ADDS_A_DOCUMENT_COLUMN = "7c469d3a82ee"  # count compression attempts per document (ALTER TABLE)


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url) as url:
        yield url


def alembic_env(url: str, **settings: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, **settings}


def start_alembic(url: str, *args: str, **settings: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=alembic_env(url, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_alembic(url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=alembic_env(url, **settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextmanager
def session(url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A plain client session, as live traffic or an operator would have."""
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        yield connection


def fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    with session(url) as connection:
        return connection.execute(query).fetchall()


def versions(url: str) -> list[str]:
    return [row[0] for row in fetch(url, "SELECT version_num FROM alembic_version")]


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))


def test_four_upgrades_at_once_on_an_empty_database_apply_each_revision_once(
    empty_database_url: str,
) -> None:
    started = time.monotonic()
    processes = [start_alembic(empty_database_url, "upgrade", "head") for _ in range(4)]
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    elapsed = time.monotonic() - started

    assert [process.returncode for process in processes] == [0, 0, 0, 0], "\n".join(outputs)
    assert versions(empty_database_url) == [script().get_current_head()]
    # One process applied the whole chain; the others waited for the lock and found it at head.
    applied = [output for output in outputs if "Running upgrade" in output]
    assert len(applied) == 1, "\n".join(outputs)
    assert applied[0].count("Running upgrade") == len(list(script().walk_revisions()))
    print(f"four concurrent `alembic upgrade head` on an empty database: {elapsed:.1f}s")


def test_an_upgrade_waits_for_the_lock_no_longer_than_its_setting(
    empty_database_url: str,
) -> None:
    with session(empty_database_url) as other_migration:
        other_migration.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        upgrade = run_alembic(
            empty_database_url, "upgrade", "head", MIGRATION_LOCK_TIMEOUT_SECONDS="1"
        )
        # Reading where the database stands never waits for the lock.
        current = run_alembic(empty_database_url, "current", MIGRATION_LOCK_TIMEOUT_SECONDS="0")

    assert upgrade.returncode != 0
    assert "MIGRATION_LOCK_TIMEOUT_SECONDS=1" in upgrade.stdout
    assert "waiting for the migration lock held by pid" in upgrade.stderr
    assert "Traceback" not in upgrade.stderr
    assert "Running upgrade" not in upgrade.stderr
    assert current.returncode == 0, current.stderr
    assert not fetch(empty_database_url, "SELECT 1 FROM pg_tables WHERE tablename = 'document'")


def test_a_revision_blocked_by_live_traffic_gives_up_and_leaves_the_previous_revision(
    empty_database_url: str,
) -> None:
    assert run_alembic(empty_database_url, "upgrade", BEFORE_ATTEMPTS).returncode == 0
    with session(empty_database_url) as traffic, traffic.transaction():
        # A reader in a long transaction: ALTER TABLE document must wait for it.
        traffic.execute("SELECT count(*) FROM document")
        reader_pid = traffic.info.backend_pid
        upgrade = run_alembic(
            empty_database_url, "upgrade", ADDS_A_DOCUMENT_COLUMN, MIGRATION_DDL_LOCK_TIMEOUT="0.5"
        )

    assert upgrade.returncode != 0
    message = upgrade.stdout
    assert f"revision {ADDS_A_DOCUMENT_COLUMN}" in message
    assert "gave up after 4 attempts" in message
    assert 'table "document"' in message
    assert f"pid {reader_pid}" in message
    assert "MIGRATION_DDL_LOCK_TIMEOUT=0.5" in message
    assert f"stays at revision {BEFORE_ATTEMPTS}" in message
    assert upgrade.stderr.count("retrying in") == 3
    assert versions(empty_database_url) == [BEFORE_ATTEMPTS]
    columns = fetch(
        empty_database_url,
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_name = 'document' AND column_name = 'compress_attempts'",
    )
    assert columns == []


def test_a_revision_retries_after_a_lock_timeout_and_then_applies(
    empty_database_url: str,
) -> None:
    assert run_alembic(empty_database_url, "upgrade", BEFORE_ATTEMPTS).returncode == 0
    with session(empty_database_url) as traffic:
        traffic.execute("BEGIN")
        traffic.execute("SELECT count(*) FROM document")
        upgrade = start_alembic(
            empty_database_url, "upgrade", ADDS_A_DOCUMENT_COLUMN, MIGRATION_DDL_LOCK_TIMEOUT="0.5"
        )
        assert upgrade.stdout is not None
        seen = []
        for line in upgrade.stdout:
            seen.append(line)
            if "retrying in" in line:
                break
        # The reader finishes while the migration backs off; the next attempt gets the lock.
        traffic.execute("COMMIT")
        output = "".join(seen) + upgrade.communicate(timeout=120)[0]

    assert upgrade.returncode == 0, output
    assert "attempt 2 of 4" in output
    assert versions(empty_database_url) == [ADDS_A_DOCUMENT_COLUMN]


def test_offline_sql_needs_no_database_and_carries_the_lock_timeout() -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"
    result = run_alembic(unreachable, "upgrade", "head", "--sql", MIGRATION_DDL_LOCK_TIMEOUT="2")
    assert result.returncode == 0, result.stderr
    revisions = len(list(script().walk_revisions()))
    assert result.stdout.count("SET LOCAL lock_timeout = '2000ms';") == revisions
    assert "pg_try_advisory_lock" not in result.stdout


REVISION_TEMPLATE = '''"""{doc}"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down_revision!r}
branch_labels = None
depends_on = None

{body}
'''

CREATE_BIG_TABLE = """
def upgrade() -> None:
    op.create_table(
        "big",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO big (value) SELECT n % 97 FROM generate_series(1, 2000) AS n")


def downgrade() -> None:
    op.drop_table("big")
"""

# The README's recipe for an index on a large table, plus probes of the migration lock.
INDEX_CONCURRENTLY = f"""
LOCK_HELD_HERE = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = {MIGRATION_LOCK_KEY >> 32} "
    "AND objid::bigint = {MIGRATION_LOCK_KEY & 0xFFFFFFFF}"
)
TAKE_LOCK = sa.text("SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        if not op.get_context().as_sql:
            bind = op.get_bind()
            held_here = bind.execute(LOCK_HELD_HERE).scalar()
            with bind.engine.connect() as elsewhere:
                taken_elsewhere = elsewhere.execute(TAKE_LOCK).scalar()
            op.execute(
                f"CREATE TABLE lock_probe AS SELECT {{held_here}} AS held_here, "
                f"{{taken_elsewhere}} AS taken_elsewhere"
            )
        # An interrupted build leaves an invalid index behind that IF NOT EXISTS would keep.
        op.drop_index(
            "ix_big_value", table_name="big", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            "ix_big_value", "big", ["value"], postgresql_concurrently=True, if_not_exists=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_big_value", table_name="big", postgresql_concurrently=True, if_exists=True
        )
"""


ADD_A_NULLABLE_COLUMN = """
def upgrade() -> None:
    op.add_column("big", sa.Column("doubled", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("big", "doubled")
"""

# The README's recipe for a backfill in batches, each committed on its own.
BACKFILL_IN_BATCHES = """
FILL_A_BATCH = sa.text(
    "UPDATE big SET doubled = value * 2 WHERE id IN "
    "(SELECT id FROM big WHERE doubled IS NULL LIMIT 500)"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        if op.get_context().as_sql:
            op.execute(FILL_A_BATCH)
        else:
            while op.get_bind().execute(FILL_A_BATCH).rowcount:
                pass


def downgrade() -> None:
    pass
"""


def throwaway_migrations(directory: Path) -> Path:
    """This project's env.py over a chain of its own: a table, a concurrent index, a backfill."""
    migrations = directory / "migrations"
    (migrations / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (migrations / name).write_text((ROOT / "migrations" / name).read_text())
    revisions = [
        ("aaaaaaaaaaaa", None, "create a big table", CREATE_BIG_TABLE),
        ("bbbbbbbbbbbb", "aaaaaaaaaaaa", "index it concurrently", INDEX_CONCURRENTLY),
        ("cccccccccccc", "bbbbbbbbbbbb", "add a nullable column", ADD_A_NULLABLE_COLUMN),
        ("dddddddddddd", "cccccccccccc", "backfill it in batches", BACKFILL_IN_BATCHES),
    ]
    for revision, down_revision, doc, body in revisions:
        (migrations / "versions" / f"{revision}.py").write_text(
            REVISION_TEMPLATE.format(
                doc=doc, revision=revision, down_revision=down_revision, body=body
            )
        )
    ini = (ROOT / "alembic.ini").read_text()
    ini = ini.replace("script_location = %(here)s/migrations", f"script_location = {migrations}")
    ini = ini.replace("prepend_sys_path = src", f"prepend_sys_path = {ROOT / 'src'}")
    (directory / "alembic.ini").write_text(ini)
    return directory / "alembic.ini"


def test_a_concurrent_index_runs_outside_a_transaction_with_the_lock_still_held(
    empty_database_url: str, tmp_path: Path
) -> None:
    ini = str(throwaway_migrations(tmp_path))

    upgrade = run_alembic(empty_database_url, "-c", ini, "upgrade", "bbbbbbbbbbbb")

    assert upgrade.returncode == 0, upgrade.stderr
    assert versions(empty_database_url) == ["bbbbbbbbbbbb"]
    # Inside the autocommit block the session still held the lock; nobody else could take it.
    assert fetch(empty_database_url, "SELECT held_here, taken_elsewhere FROM lock_probe") == [
        (1, False)
    ]
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_big_value'::regclass"
    assert fetch(empty_database_url, valid) == [(True,)]
    # After the run the lock is free again.
    with session(empty_database_url) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)).fetchone()
    downgrade = run_alembic(empty_database_url, "-c", ini, "downgrade", "aaaaaaaaaaaa")
    assert downgrade.returncode == 0, downgrade.stderr
    assert fetch(empty_database_url, "SELECT to_regclass('ix_big_value')") == [(None,)]


def test_a_backfill_in_batches_fills_every_row(empty_database_url: str, tmp_path: Path) -> None:
    ini = str(throwaway_migrations(tmp_path))

    upgrade = run_alembic(empty_database_url, "-c", ini, "upgrade", "head")

    assert upgrade.returncode == 0, upgrade.stderr
    assert versions(empty_database_url) == ["dddddddddddd"]
    assert fetch(empty_database_url, "SELECT count(*) FROM big WHERE doubled IS NULL") == [(0,)]
    assert fetch(empty_database_url, "SELECT count(*) FROM big WHERE doubled <> value * 2") == [
        (0,)
    ]


def test_the_readme_recipes_pass_the_migration_lint(tmp_path: Path) -> None:
    ini = str(throwaway_migrations(tmp_path))
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"
    sql = run_alembic(unreachable, "-c", ini, "upgrade", "aaaaaaaaaaaa:head", "--sql")
    assert sql.returncode == 0, sql.stderr
    assert "DROP INDEX CONCURRENTLY IF EXISTS ix_big_value" in sql.stdout
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_big_value" in sql.stdout
    assert "UPDATE big SET doubled" in sql.stdout
    sql_file = tmp_path / "recipes.sql"
    sql_file.write_text(sql.stdout)
    assert squawk(sql_file) == []
