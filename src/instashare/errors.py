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
    ValidationException,
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


# A database that cannot be reached shows up as one of these (TimeoutError and the connection
# errors are OSErrors; asyncpg raises them unwrapped when it cannot connect).
_OUTAGE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError)
# Modules whose OSErrors are the database connection failing, not a fault of ours.
_DATABASE_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def _raised_by_database_driver(exc: OSError) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DATABASE_DRIVER_MODULES:
            return True
        traceback = traceback.tb_next
    return False


def is_database_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) means the database is unreachable right now."""
    while exc is not None:
        if (
            isinstance(exc, _OUTAGE_ERRORS)
            or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
            or (isinstance(exc, OSError) and _raised_by_database_driver(exc))
        ):
            return True
        exc = exc.__cause__
    return False


def _database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[object]:
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return create_exception_response(
        request, ServiceUnavailableException(detail="the database is unavailable; try again later")
    )


def _internal_error(request: Request[Any, Any, Any]) -> Response[object]:
    log.exception("unhandled error", path=request.url.path)
    return create_exception_response(request, InternalServerException())


def storage_unavailable_handler(
    request: Request[Any, Any, Any], exc: StorageUnavailableError
) -> Response[object]:
    log.warning("storage unavailable", path=request.url.path, error=repr(exc))
    return create_exception_response(
        request, ServiceUnavailableException(detail="storage is unavailable; try again later")
    )


def undecodable_text_handler(
    request: Request[Any, Any, Any], exc: UnicodeDecodeError
) -> Response[object]:
    """A body (or header) that is not the UTF-8 it has to be: the client's fault, not ours.

    Litestar's JSON decoding lets msgspec's UnicodeDecodeError through unwrapped.
    """
    return create_exception_response(
        request, ValidationException(detail=f"the request is not valid UTF-8: {exc.reason}")
    )


def repository_error_handler(
    request: Request[Any, Any, Any], exc: RepositoryError
) -> Response[object]:
    """advanced-alchemy's errors: an outage is 503, the rest its own mapping (404, 409, 500)."""
    if is_database_outage(exc):
        return _database_unavailable(request, exc)
    return exception_to_http_response(request, exc)


def database_error_handler(
    request: Request[Any, Any, Any], exc: sa_exc.DBAPIError
) -> Response[object]:
    """Driver errors raised outside a repository: an outage is 503, anything else a bug (500)."""
    if is_database_outage(exc):
        return _database_unavailable(request, exc)
    return _internal_error(request)


def os_error_handler(request: Request[Any, Any, Any], exc: OSError) -> Response[object]:
    """The database driver failing to connect is an outage (503); any other OSError is a bug."""
    if is_database_outage(exc):
        return _database_unavailable(request, exc)
    return _internal_error(request)


# Handlers apply to subclasses too: DBAPIError covers every driver error SQLAlchemy raises.
DEPENDENCY_ERROR_HANDLERS: ExceptionHandlersMap = {
    StorageUnavailableError: storage_unavailable_handler,
    RepositoryError: repository_error_handler,
    sa_exc.DBAPIError: database_error_handler,
    OSError: os_error_handler,
    UnicodeDecodeError: undecodable_text_handler,
}
