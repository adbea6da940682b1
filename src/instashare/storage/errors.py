"""The errors storage raises, and the one place where obstore and OS errors become them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from obstore.exceptions import BaseError as ObstoreError


class StorageError(Exception):
    """Base class of the errors raised by :class:`~instashare.storage.Storage`."""


class StorageUnavailableError(StorageError):
    """The backend is unreachable, refused the request, or failed with an IO error."""


class ObjectNotFoundError(StorageError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under key {key!r}")
        self.key = key


@contextlib.contextmanager
def translate_errors(key: str, *, missing_is_not_found: bool = True) -> Iterator[None]:
    """Translate obstore and OS errors into :class:`ObjectNotFoundError` or
    :class:`StorageUnavailableError`, so callers never see a backend's own exceptions.

    Writes pass ``missing_is_not_found=False``: a file missing while writing (say, a directory
    removed under the upload) is a storage failure, not an answer about the key.
    """
    try:
        yield
    # obstore reports a missing object as the builtin FileNotFoundError (NotFoundError is
    # deprecated); it must be matched before OSError, of which it is a subclass.
    except FileNotFoundError as exc:
        if not missing_is_not_found:
            raise StorageUnavailableError(str(exc)) from exc
        raise ObjectNotFoundError(key) from exc
    # OSError also covers TimeoutError and local IO failures (disk full, permissions).
    except (ObstoreError, OSError) as exc:
        # obstore messages carry a multi-line debug dump; the first line is the useful summary,
        # the full error stays attached as __cause__.
        summary = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise StorageUnavailableError(summary) from exc
