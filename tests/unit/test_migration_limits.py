from __future__ import annotations

import pytest
from pydantic import ValidationError

from instashare import cli
from instashare.config import Settings
from instashare.migration_safety import MigrationLimits


def test_the_settings_become_the_migration_limits() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, migration_lock_timeout_seconds=30, migration_ddl_lock_timeout=0.25
    )
    limits = settings.migration_limits()
    assert limits.lock_wait_seconds == 30
    assert limits.lock_timeout_statement == "SET LOCAL lock_timeout = '250ms'"
    # Retries wait longer each time, starting from the lock timeout itself.
    assert [limits.retry_delay(attempt) for attempt in (1, 2, 3)] == [0.25, 0.5, 1.0]


def test_the_defaults_are_five_minutes_and_five_seconds() -> None:
    limits = Settings(_env_file=None).migration_limits()  # type: ignore[call-arg]
    assert limits == MigrationLimits(lock_wait_seconds=300, ddl_lock_timeout_seconds=5)
    assert limits.lock_timeout_statement == "SET LOCAL lock_timeout = '5000ms'"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MIGRATION_DDL_LOCK_TIMEOUT", "0"), ("MIGRATION_LOCK_TIMEOUT_SECONDS", "-1")],
)
def test_a_lock_timeout_that_cannot_work_is_refused(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    cli.get_settings.cache_clear()
    try:
        assert cli.main(["worker"]) == 2
    finally:
        cli.get_settings.cache_clear()
    assert "invalid configuration" in capsys.readouterr().err
