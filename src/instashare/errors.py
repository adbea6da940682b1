"""HTTP error shapes shared by every route: ``{"status_code", "detail"[, "extra"]}``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    TooManyRequestsException,
)
from litestar.exceptions.responses import create_exception_response
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_503_SERVICE_UNAVAILABLE,
)


class ConflictException(ClientException):
    status_code = HTTP_409_CONFLICT


class ServiceUnavailableException(HTTPException):
    status_code = HTTP_503_SERVICE_UNAVAILABLE


def not_authorized_handler(
    request: Request[Any, Any, Any], exc: NotAuthorizedException
) -> Response[object]:
    # RFC 9110: a 401 tells the client which scheme to use.
    exc.headers = {**(exc.headers or {}), "WWW-Authenticate": "Bearer"}
    return create_exception_response(request, exc)


def too_many_requests_handler(
    request: Request[Any, Any, Any], exc: TooManyRequestsException
) -> Response[object]:
    headers = dict(exc.headers or {})
    # The rate limiter reports seconds until its window resets; clients look for Retry-After.
    headers.setdefault("Retry-After", str(max(1, int(headers.get("RateLimit-Reset", "60")))))
    exc.headers = headers
    return create_exception_response(request, exc)


class PayloadTooLargeException(ClientException):
    status_code = HTTP_413_REQUEST_ENTITY_TOO_LARGE


class ClientDisconnectedException(ClientException):
    """The client went away mid-request; nobody reads this answer, but logs stay honest."""

    status_code = HTTP_400_BAD_REQUEST
