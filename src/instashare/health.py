"""``GET /health``: is every dependency reachable?"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import get
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from instashare.logs import get_logger
from instashare.storage import Storage

log = get_logger(__name__)
CHECK_TIMEOUT_SECONDS = 5.0


async def _check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _run_check(name: str, probe: Any) -> str:
    try:
        await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "unavailable"; the reason goes to the log
        log.warning("health check failed", check=name, error=repr(exc))
        return "unavailable"
    return "ok"


@get("/health", exclude_from_auth=True, opt={"exclude_from_auth": True}, tags=["health"])
async def health(db_engine: AsyncEngine, storage: Storage) -> Response[dict[str, Any]]:
    database, stored = await asyncio.gather(
        _run_check("database", _check_database(db_engine)),
        _run_check("storage", storage.check()),
    )
    checks = {"database": database, "storage": stored}
    failing = [name for name, result in checks.items() if result != "ok"]
    if not failing:
        return Response({"status": "ok", "checks": checks}, status_code=HTTP_200_OK)
    return Response(
        {
            "status": "unavailable",
            "status_code": HTTP_503_SERVICE_UNAVAILABLE,
            "detail": f"unavailable: {', '.join(failing)}",
            "checks": checks,
        },
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
    )
