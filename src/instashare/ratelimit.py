"""Rate limiting of the credential endpoints, counted in Postgres so every API process shares it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore, StoreModelMixin
from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from instashare.config import Settings

STORE_NAME = "rate_limit"
LIMITED_PATHS = frozenset({"/api/auth/register", "/api/auth/login"})


class KeyValueEntry(StoreModelMixin):
    """Rows of advanced-alchemy's key/value store (namespaced, with expiry)."""

    __tablename__ = "key_value_store"


def client_host(request: Request[Any, Any, Any], *, trust_forwarded_headers: bool) -> str:
    """The client's address as this service can know it (``unknown`` when it cannot)."""
    if trust_forwarded_headers:
        forwarded = request.headers.get("x-forwarded-for", "")
        # The right-most entry is the one our own proxy appended; the rest is client-supplied.
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.client.host if request.client else "unknown"


def client_address(settings: Settings) -> Callable[[Request[Any, Any, Any]], str]:
    def identify(request: Request[Any, Any, Any]) -> str:
        # Each limited route has its own budget per client address.
        host = client_host(request, trust_forwarded_headers=settings.trust_forwarded_headers)
        return f"{host}::{request.url.path}"

    return identify


def rate_limit_store(alchemy: SQLAlchemyAsyncConfig) -> SQLAlchemyStore[SQLAlchemyAsyncConfig]:
    return SQLAlchemyStore(config=alchemy, model=KeyValueEntry, namespace=STORE_NAME)


async def _is_limited(request: Request[Any, Any, Any]) -> bool:
    return request.url.path in LIMITED_PATHS


def rate_limit_config(settings: Settings) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", settings.auth_rate_limit_per_minute),
        store=STORE_NAME,
        check_throttle_handler=_is_limited,
        identifier_for_request=client_address(settings),
    )
