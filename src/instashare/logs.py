"""Structured logging for the API, the worker and the command line, configured in one place."""

from __future__ import annotations

import logging
import re
from typing import Literal

import structlog
from litestar.logging.config import StructLoggingConfig
from litestar.middleware.logging import LoggingMiddlewareConfig
from structlog.typing import EventDict

from instashare.config import Settings

_RESPONSE_FIELDS: tuple[Literal["status_code"]] = ("status_code",)


# A share's link is a credential: its token never reaches the logs (request logs, access logs).
_SHARE_LINK = re.compile(r"(/s/)[A-Za-z0-9_-]{16,}")
REDACTED_TOKEN = "<token>"  # noqa: S105


def redact_share_links(_: object, __: str, event_dict: EventDict) -> EventDict:
    """Replace the token of every ``/s/<token>`` path in the event's text values."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "/s/" in value:
            event_dict[key] = _SHARE_LINK.sub(rf"\g<1>{REDACTED_TOKEN}", value)
    return event_dict


def logging_config(settings: Settings) -> StructLoggingConfig:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    config = StructLoggingConfig(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        log_exceptions="always",
        # Client errors are expected traffic, not incidents: no stack traces for them.
        disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 429},
        pretty_print_tty=not settings.log_json,
    )
    # First in both chains: the service's own events and the standard library's (uvicorn's
    # access log), before anything renders them.
    config.processors = [redact_share_links, *(config.processors or [])]
    if config.standard_lib_logging_config is not None:
        for formatter in config.standard_lib_logging_config.formatters.values():
            if "processors" in formatter:
                formatter["processors"] = [redact_share_links, *formatter["processors"]]
    return config


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
