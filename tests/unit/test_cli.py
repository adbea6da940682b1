from __future__ import annotations

import pytest
from tests.support.ports import free_port

from instashare import cli
from instashare.config import DEVELOPMENT_SECRET_KEY, Settings
from instashare.database_setup import DatabaseSetupError, EmbeddedPostgres


def unconfigured_settings(port: int) -> Settings:
    # As if DATABASE_URL were unset: the URL is the default one, not chosen by anyone.
    return Settings.model_construct(
        _fields_set=set(), database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x"
    )


def test_without_database_or_binaries_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(EmbeddedPostgres, "available", staticmethod(lambda: False))
    with pytest.raises(DatabaseSetupError) as error:
        cli.resolve_database_url(unconfigured_settings(free_port()))
    message = str(error.value)
    assert "DATABASE_URL" in message
    assert "docker compose up -d db" in message
    assert "\n" not in message


def test_an_explicit_database_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EmbeddedPostgres, "start", lambda self: pytest.fail("must not start"))
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"
    assert cli.resolve_database_url(Settings(_env_file=None, database_url=url)) == url  # type: ignore[call-arg]


def test_main_prints_one_line_on_setup_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(_: Settings) -> str:
        raise DatabaseSetupError("no database here")

    monkeypatch.setattr(cli, "prepare_database", fail)
    assert cli.main(["serve"]) == 1
    assert capsys.readouterr().err == "instashare: no database here\n"


@pytest.mark.parametrize("secret", [DEVELOPMENT_SECRET_KEY, "short", ""])
def test_production_refuses_weak_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(_env_file=None, instashare_env="production", secret_key=secret)  # type: ignore[call-arg]


def test_production_accepts_a_long_secret() -> None:
    settings = Settings(_env_file=None, instashare_env="production", secret_key="s" * 32)  # type: ignore[call-arg]
    assert settings.secret_key == "s" * 32


def test_storage_defaults_to_var_storage_under_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage_url == (tmp_path / "var" / "storage").as_uri()  # type: ignore[operator]
