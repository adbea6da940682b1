"""HTTP error shapes shared by every route: ``{"status_code", "detail"[, "extra"]}``."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.exceptions import RepositoryError
from advanced_alchemy.extensions.litestar.exception_handler import exception_to_http_response
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
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
from litestar.types import ExceptionHandlersMap
from sqlalchemy import exc as sa_exc

from instashare.logs import get_logger
from instashare.storage import StorageUnavailableError

log = get_logger(__name__)


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


# Failures of a dependency rather than of the request: the client may retry later.
# (TimeoutError and the connection errors are OSErrors.)
_DATABASE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, OSError)


def _database_down(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, _DATABASE_DOWN) or (
            isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
        ):
            return True
        exc = exc.__cause__
    return False


def storage_unavailable_handler(
    request: Request[Any, Any, Any], exc: StorageUnavailableError
) -> Response[object]:
    log.warning("storage unavailable", path=request.url.path, error=repr(exc))
    return create_exception_response(
        request, ServiceUnavailableException(detail="storage is unavailable; try again later")
    )


def database_unavailable_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[object]:
    if not _database_down(exc):
        if isinstance(exc, RepositoryError):
            # advanced-alchemy's own mapping: not found 404, integrity 409, else 500.
            return exception_to_http_response(request, exc)
        log.exception("unhandled error", path=request.url.path)
        return create_exception_response(request, InternalServerException())
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return create_exception_response(
        request, ServiceUnavailableException(detail="the database is unavailable; try again later")
    )


# Handlers apply to subclasses too: DBAPIError covers every driver error SQLAlchemy raises.
UNAVAILABLE_HANDLERS: ExceptionHandlersMap = {
    StorageUnavailableError: storage_unavailable_handler,
    RepositoryError: database_unavailable_handler,
    sa_exc.DBAPIError: database_unavailable_handler,
    OSError: database_unavailable_handler,
}
