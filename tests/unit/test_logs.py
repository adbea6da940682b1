"""Share links are credentials: no log line carries one."""

from __future__ import annotations

import logging

import structlog

from instashare.config import Settings
from instashare.logs import logging_config, redact_share_links

TOKEN = "AaIdRhAwcvuOtheq3oIxht7vekTCk3ONi0-KaLyDWNLHuS7x"


def test_paths_and_messages_lose_their_tokens() -> None:
    event = redact_share_links(
        None,
        "info",
        {
            "event": f'127.0.0.1:5 - "GET /s/{TOKEN}/download HTTP/1.1" 200',
            "path": f"/s/{TOKEN}",
            "status_code": 200,
            "other": "/api/shares/not-a-token",
        },
    )
    assert TOKEN not in str(event)
    assert event["path"] == "/s/<token>"
    assert event["event"] == '127.0.0.1:5 - "GET /s/<token>/download HTTP/1.1" 200'
    assert event["other"] == "/api/shares/not-a-token"
    assert event["status_code"] == 200


def test_standard_library_records_are_redacted_too() -> None:
    config = logging_config(Settings(_env_file=None, log_json=True))  # type: ignore[call-arg]
    assert config.processors is not None
    assert config.processors[0] is redact_share_links
    assert config.standard_lib_logging_config is not None
    formatter_config = config.standard_lib_logging_config.formatters["standard"]
    formatter = structlog.stdlib.ProcessorFormatter(processors=formatter_config["processors"])
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "GET %s HTTP/1.1" %d',
        ("127.0.0.1:5", f"/s/{TOKEN}/files/x", 200), None,
    )  # fmt: skip
    line = formatter.format(record)
    assert TOKEN not in line
    assert "/s/<token>/files/x" in line
