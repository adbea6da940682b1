"""Settings: read once from the environment and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from instashare.migration_safety import MigrationLimits
from instashare.storage import StorageSettings

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/instashare"
# Deliberately obvious so that a production deployment that forgot to set it is refused.
DEVELOPMENT_SECRET_KEY = "instashare-development-secret-key-do-not-use-in-production"  # noqa: S105
GIB = 1024**3


class Settings(BaseSettings):
    """Every tunable of the service, named as the environment variable that sets it."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    instashare_env: Literal["development", "production", "test"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_echo: bool = False
    # Migrations: how long an upgrade waits for another process's upgrade to finish, and how
    # long one DDL statement may wait for a table lock (queueing live traffic behind it) before
    # its revision is rolled back and retried.
    migration_lock_timeout_seconds: float = Field(default=300.0, ge=0)
    migration_ddl_lock_timeout: float = Field(default=5.0, gt=0)

    secret_key: str = DEVELOPMENT_SECRET_KEY
    access_token_ttl_seconds: int = Field(default=3600, ge=1)

    storage_url: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    max_upload_bytes: int = Field(default=2 * GIB, ge=1)
    user_quota_bytes: int = Field(default=10 * GIB, ge=1)
    # An unfinished resumable upload is removed this long after its last progress.
    upload_expiry_hours: float = Field(default=24.0, gt=0)
    # Browser origins allowed to call the API from other sites (comma-separated, "*" for any);
    # empty: same-origin only, no CORS headers.
    cors_allow_origins: str = ""

    auth_rate_limit_per_minute: int = Field(default=20, ge=1)
    trust_forwarded_headers: bool = False

    run_workers_in_process: bool = True
    worker_concurrency: int = Field(default=2, ge=1)
    worker_shutdown_grace_seconds: int = Field(default=10, ge=0)
    compress_max_attempts: int = Field(default=5, ge=1)
    compress_retry_delay_seconds: float = Field(default=5.0, ge=0)
    compress_retry_backoff_max_seconds: float = Field(default=120.0, ge=0)
    # A killed worker's job is noticed this long after its last sign of life.
    compress_heartbeat_seconds: int = Field(default=20, ge=4)
    compression_level: int = Field(default=3, ge=0, le=3)

    # The base of share links (https://files.example.com); unset: each request's scheme and host.
    public_url: str | None = None
    share_max_expiry_days: int = Field(default=365, ge=1, le=36_500)
    share_unlock_token_ttl_seconds: int = Field(default=3600, ge=60)
    # Wrong share passwords accepted per share and window, whoever sends them.
    share_unlock_max_attempts: int = Field(default=10, ge=1)
    share_unlock_window_seconds: int = Field(default=900, ge=1)
    # How long a partial download may be resumed (and counted once complete).
    share_resume_window_hours: int = Field(default=24, ge=1)
    # Expired shares are deleted this long after they expire (until then the owner may extend).
    share_sweep_grace_days: int = Field(default=7, ge=0)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("secret_key")
    @classmethod
    def _default_secret(cls, value: str) -> str:
        # An empty SECRET_KEY (as compose passes when unset) means "not configured".
        return value or DEVELOPMENT_SECRET_KEY

    @field_validator("storage_url")
    @classmethod
    def _default_storage(cls, value: str) -> str:
        # Resolved here, not at import time, so the default follows the working directory.
        return value or (Path.cwd() / "var" / "storage").resolve().as_uri()

    @field_validator("public_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            msg = "PUBLIC_URL must be an http(s) URL without query or fragment, like https://files.example.com"
            raise ValueError(msg)
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> Settings:
        if self.instashare_env == "production" and (
            self.secret_key == DEVELOPMENT_SECRET_KEY or len(self.secret_key.encode()) < 32
        ):
            msg = "SECRET_KEY must be set to a random value of at least 32 bytes in production"
            raise ValueError(msg)
        return self

    def storage_settings(self) -> StorageSettings:
        return StorageSettings(
            url=self.storage_url,
            s3_endpoint=self.s3_endpoint_url,
            s3_region=self.s3_region,
            s3_access_key_id=self.s3_access_key_id,
            s3_secret_access_key=self.s3_secret_access_key,
        )

    def migration_limits(self) -> MigrationLimits:
        return MigrationLimits(
            lock_wait_seconds=self.migration_lock_timeout_seconds,
            ddl_lock_timeout_seconds=self.migration_ddl_lock_timeout,
        )

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    @property
    def sync_database_url(self) -> str:
        """The same database as a plain ``postgresql://`` DSN, for libpq-based clients."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
