"""squawk over each revision's SQL, as `alembic upgrade <previous>:<revision> --sql` renders it.

A finding fails the test unless `.squawk.toml` allows its rule, for every revision or for that
revision alone; an allowance that no longer matches a finding fails it too, so the file stays true.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from instashare.migration_safety import MigrationLimits

ROOT = Path(__file__).resolve().parents[2]
SQUAWK_CONFIG = ROOT / ".squawk.toml"
SQUAWK = Path(sys.executable).parent / "squawk"
# Offline mode never connects: any URL naming the dialect will do.
OFFLINE_URL = "postgresql+asyncpg://offline@127.0.0.1:1/offline"


def alembic_config(buffer: io.StringIO | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"), output_buffer=buffer)
    config.attributes.update(
        database_url=OFFLINE_URL, migration_limits=MigrationLimits(), configure_logger=False
    )
    return config


def revision_pairs() -> list[tuple[str | None, str]]:
    script = ScriptDirectory.from_config(alembic_config())
    ordered = [revision.revision for revision in reversed(list(script.walk_revisions()))]
    return list(zip([None, *ordered[:-1]], ordered, strict=True))


def squawk_settings() -> dict[str, Any]:
    return tomllib.loads(SQUAWK_CONFIG.read_text())


def revision_sql(previous: str | None, revision: str) -> str:
    buffer = io.StringIO()
    span = f"{previous}:{revision}" if previous else revision
    command.upgrade(alembic_config(buffer), span, sql=True)
    return buffer.getvalue()


def squawk(sql_file: Path, excluded: list[str] | None = None) -> list[dict[str, Any]]:
    """squawk's findings in one SQL file, with .squawk.toml's rules (or ``excluded`` instead)."""
    # --exclude on the command line replaces the file's list: pass both.
    excluded = squawk_settings()["excluded_rules"] if excluded is None else excluded
    result = subprocess.run(
        [
            str(SQUAWK),
            "--config",
            str(SQUAWK_CONFIG),
            "--reporter",
            "json",
            *(["--exclude", ",".join(excluded)] if excluded else []),
            str(sql_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return findings


@pytest.mark.parametrize(("previous", "revision"), revision_pairs(), ids=lambda value: value)
def test_squawk_finds_nothing_that_is_not_allowed(
    previous: str | None, revision: str, tmp_path: Path
) -> None:
    settings = squawk_settings()
    everywhere = list(settings["excluded_rules"])
    allowed_here = set(settings.get("revisions", {}).get(revision, {}).get("allowed_rules", []))
    sql_file = tmp_path / f"{revision}.sql"
    sql_file.write_text(revision_sql(previous, revision))

    findings = squawk(sql_file, everywhere)

    found_rules = {finding["rule_name"] for finding in findings}
    unexpected = [
        f"{revision}.sql:{finding['line']}: {finding['rule_name']}: {finding['message']}"
        for finding in findings
        if finding["rule_name"] not in allowed_here
    ]
    assert not unexpected, "squawk findings:\n" + "\n".join(unexpected)
    assert allowed_here <= found_rules, (
        f"{revision} is allowed {sorted(allowed_here - found_rules)} in .squawk.toml, "
        "but squawk no longer finds them: remove the allowance"
    )


def test_allowances_name_real_revisions_and_real_rules(tmp_path: Path) -> None:
    settings = squawk_settings()
    known = {revision for _, revision in revision_pairs()}
    assert set(settings.get("revisions", {})) <= known
    # squawk rejects an unknown rule name in its config; the per-revision ones are ours to check.
    every_allowed = {
        rule
        for entry in settings.get("revisions", {}).values()
        for rule in entry.get("allowed_rules", [])
    }
    empty = tmp_path / "empty.sql"
    empty.write_text("SELECT 1;\n")
    assert squawk(empty, sorted(every_allowed)) == []


def test_every_revision_starts_its_transaction_with_the_lock_timeout() -> None:
    sql = revision_sql(None, revision_pairs()[-1][1])
    revisions = len(revision_pairs())
    assert sql.count("SET LOCAL lock_timeout = '5000ms';") == revisions
    # Each revision opens a transaction of its own, the lock timeout first (a revision with an
    # autocommit block opens one more after the block, only to record itself).
    # The first one creates alembic_version before its revision starts.
    opened = re.findall(
        r"BEGIN;\s+(?:CREATE TABLE alembic_version [^;]+;\s+)?-- Running upgrade [^\n]*->"
        r" \S+\s+SET LOCAL lock_timeout",
        sql,
    )
    assert len(opened) == revisions
