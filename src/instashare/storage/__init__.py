"""The one place where the service touches object storage (a local directory or S3), via obstore.

Keys are opaque strings chosen by the caller (``originals/<uuid>``), never user file names.
Every obstore/OS error is translated in :mod:`.errors`, so callers only ever see
:class:`ObjectNotFoundError`, :class:`StorageUnavailableError` or their own exceptions.

:meth:`Storage.from_settings` builds the backend that the URL names: :class:`.local.LocalStorage`
or :class:`.s3.S3Storage`, both behind the interface of :class:`Storage` (:mod:`.base`).
Resumable uploads (bytes appended across requests and processes) are described in
:mod:`.resumable`; each backend implements them in a module of its own.
"""

from instashare.storage.base import Storage
from instashare.storage.errors import ObjectNotFoundError, StorageError, StorageUnavailableError
from instashare.storage.resumable import (
    ResumableDataLostError,
    ResumableUpload,
    ResumableWriter,
    StoredPart,
)
from instashare.storage.settings import MIB, StorageSettings
from instashare.storage.writer import Writer

__all__ = [
    "MIB",
    "ObjectNotFoundError",
    "ResumableDataLostError",
    "ResumableUpload",
    "ResumableWriter",
    "Storage",
    "StorageError",
    "StorageSettings",
    "StorageUnavailableError",
    "StoredPart",
    "Writer",
]
