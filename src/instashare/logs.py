"""Structured logging for the API, the worker and the command line, configured in one place."""

from __future__ import annotations

import logging
from typing import Literal

import structlog
from litestar.logging.config import StructLoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig

from instashare.config import Settings

_RESPONSE_FIELDS: tuple[Literal["status_code"]] = ("status_code",)


def logging_config(settings: Settings) -> StructLoggingConfig:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    return StructLoggingConfig(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        log_exceptions="always",
        # Client errors are expected traffic, not incidents: no stack traces for them.
        disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 429},
        pretty_print_tty=not settings.log_json,
    )


def request_logging_config() -> LoggingMiddlewareConfig:
    # Never log bodies (passwords, and uploads that must not be buffered) nor headers (tokens).
    return LoggingMiddlewareConfig(
        request_log_fields=("method", "path", "query"),
        response_log_fields=_RESPONSE_FIELDS,
        exclude=["^/health$"],
    )


def configure_logging(settings: Settings) -> None:
    """For processes that run without the app (the worker, the command line)."""
    logging_config(settings).configure()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
