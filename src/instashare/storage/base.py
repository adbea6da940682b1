"""What every storage backend offers; reads, deletes and probes go through obstore for both."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

import obstore

from instashare.storage.errors import ObjectNotFoundError, translate_errors
from instashare.storage.resumable import ResumableUpload, ResumableWriter
from instashare.storage.settings import MIB, StorageSettings
from instashare.storage.writer import Writer

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ObjectStore

# Upper bound for check(): it answers "is storage reachable now", not after retries give up.
_PROBE_TIMEOUT_SECONDS: Final = 5.0


class Storage(ABC):
    """Async access to one bucket/prefix or local directory.

    Build one with :meth:`from_settings`. Each backend is a subclass in a module of its own
    (:mod:`.local`, :mod:`.s3`) and keeps what only it needs there: how it writes an object,
    what it leaves behind, how it proves it is usable. An operation that every backend must
    offer becomes an abstract method here.
    """

    def __init__(self, store: ObjectStore, *, stream_store: ObjectStore | None = None) -> None:
        self._store = store
        # Streamed reads may use a client whose overall timeout fits slow downloads.
        self._stream_store = stream_store if stream_store is not None else store

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> Storage:
        """The backend that ``settings.url`` names: ``file://`` (or a bare path) or ``s3://``."""
        # Imported here because both backend modules import this one.
        from instashare.storage.local import LocalStorage
        from instashare.storage.s3 import S3Storage

        parts = urlsplit(settings.url)
        scheme = parts.scheme.lower()
        if scheme in ("file", ""):
            return LocalStorage(_local_path(settings.url, parts.scheme))
        if scheme == "s3":
            if not parts.netloc:
                msg = "an s3:// storage URL needs a bucket: s3://bucket[/prefix]"
                raise ValueError(msg)
            return S3Storage(parts.netloc, parts.path.strip("/"), settings)
        msg = f"unsupported storage URL scheme {parts.scheme!r}: use file:// or s3://"
        raise ValueError(msg)

    @abstractmethod
    async def upload(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Stream ``chunks`` into the object ``key`` and return the number of bytes written.

        Memory stays bounded whatever the size, and the object appears only once complete
        (each backend says how). If ``chunks`` raises, that very exception propagates; if the
        calling task is cancelled, CancelledError propagates. In both cases the upload is
        aborted first: no object, no incomplete multipart upload and no partial file is left
        behind.
        """

    @contextlib.asynccontextmanager
    async def writer(self, key: str, *, content_type: str | None = None) -> AsyncIterator[Writer]:
        """Write an object piece by piece: committed on clean exit, aborted on any exception.

        A storage failure surfaces from a later ``write()`` or from the exit of the block.
        """
        sink = Writer(lambda chunks: self.upload(key, chunks, content_type=content_type))
        try:
            yield sink
            await sink.commit()
        except BaseException:
            await sink.abort()
            raise

    async def read(
        self,
        key: str,
        *,
        start: int = 0,
        length: int | None = None,
        chunk_size: int = MIB,
    ) -> AsyncIterator[bytes]:
        """Stream the bytes ``[start, start + length)`` of the object, like slicing a bytes.

        A range reaching past the end is cut at the end; one starting at or after the end
        yields nothing. Chunks are at least ``chunk_size`` bytes, except the last. Errors
        (including ObjectNotFoundError) surface on the first iteration.
        """
        if start < 0 or (length is not None and length < 0):
            msg = "start and length must not be negative"
            raise ValueError(msg)
        if chunk_size < 1:
            msg = "chunk_size must be positive"
            raise ValueError(msg)
        if self._names_no_object(key):
            raise ObjectNotFoundError(key)
        with translate_errors(key):
            if start == 0 and length is None:
                result = await obstore.get_async(self._stream_store, key)
            else:
                # Stores reject ranges that are empty or start past the end, with errors that
                # differ per backend; knowing the size lets us clip the range ourselves.
                size = (await obstore.head_async(self._store, key))["size"]
                end = size if length is None else min(size, start + length)
                if start >= end:
                    return
                options: GetOptions = {"range": (start, end)}
                result = await obstore.get_async(self._stream_store, key, options=options)
            stream = result.stream(min_chunk_size=chunk_size)
        while True:
            # Only the storage calls are translated, not exceptions thrown in at the yield.
            with translate_errors(key):
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
            yield chunk

    async def read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        """The bytes of several small ``(key, start, length)`` ranges, in order, held in memory.

        For ranges known to lie inside their objects (a share's many small entries), where a
        request per range would cost more than the bytes. A range past an object's end comes
        back short; the caller checks lengths.
        """
        for key, start, length in ranges:
            if start < 0 or length < 1:
                msg = "start must not be negative and length must be positive"
                raise ValueError(msg)
            if self._names_no_object(key):
                raise ObjectNotFoundError(key)
        return await self._read_ranges(ranges)

    async def _read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        # One request per range, all at once: what a remote store offers.
        async def one(key: str, start: int, length: int) -> bytes:
            with translate_errors(key):
                data = await obstore.get_range_async(self._store, key, start=start, length=length)
            return bytes(data)

        return list(await asyncio.gather(*[one(*item) for item in ranges]))

    async def size(self, key: str) -> int:
        if self._names_no_object(key):
            raise ObjectNotFoundError(key)
        with translate_errors(key):
            meta = await obstore.head_async(self._store, key)
        return meta["size"]

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""
        if self._names_no_object(key):
            return
        # S3 ignores missing keys, LocalStore raises FileNotFoundError.
        with contextlib.suppress(ObjectNotFoundError), translate_errors(key):
            await obstore.delete_async(self._store, key)

    def _names_no_object(self, key: str) -> bool:
        """Whether ``key`` names something of the backend's own that is no object.

        Such keys read as missing and are never deleted. None, unless a backend says otherwise.
        """
        return False

    async def remove_stale_partials(self, older_than: timedelta) -> int:
        """Delete what uploads left behind when their process died mid-way (kill -9, power
        loss), last written more than ``older_than`` ago; return how many were deleted.

        An upload in progress keeps its leftovers fresh, so ``older_than`` only has to exceed
        the longest stall of a client.
        """
        if older_than < timedelta(0):
            msg = "older_than must not be negative"
            raise ValueError(msg)
        return await self._remove_stale_partials(older_than)

    @abstractmethod
    async def _remove_stale_partials(self, older_than: timedelta) -> int:
        """:meth:`remove_stale_partials` once ``older_than`` is known to be valid."""

    @abstractmethod
    async def open_resumable(self, upload: ResumableUpload) -> ResumableWriter:
        """A writer that appends to ``upload`` from its recorded offset (see :mod:`.resumable`).

        Raises ResumableDataLostError when storage holds fewer bytes than the offset says.
        """

    @abstractmethod
    async def finish_resumable(self, upload: ResumableUpload) -> None:
        """Turn a complete upload (offset == length) into the object ``destination_key`` and
        remove its working space. Running it again after it succeeded does nothing, so a
        process that died before recording the result can simply finish again.
        """

    @abstractmethod
    async def remove_resumable(self, upload: ResumableUpload) -> None:
        """Delete everything an unfinished upload stored (but not its destination object)."""

    async def close(self) -> None:  # noqa: B027  (optional: most backends hold nothing)
        """Release the connections a backend keeps open; it may still be used afterwards."""

    async def check(self) -> None:
        """Cheap health probe: raise StorageUnavailableError unless storage answers now."""
        with translate_errors(""):
            async with asyncio.timeout(_PROBE_TIMEOUT_SECONDS):
                await self._probe()

    async def _probe(self) -> None:
        # A one-level listing proves the endpoint, the credentials and the bucket (a missing
        # bucket is a GenericError, not a not-found, in obstore).
        await obstore.list_with_delimiter_async(self._store)


def _local_path(url: str, scheme: str) -> Path:
    """Path of a ``file:`` URL (or bare path), made absolute against the working directory."""
    raw = url[len(scheme) + 1 :] if scheme else url
    if raw.startswith("//"):
        raw = raw[2:]
        if raw.startswith("localhost/"):
            raw = raw[len("localhost") :]
    if not raw:
        msg = f"storage URL {url!r} names no directory"
        raise ValueError(msg)
    return Path(unquote(raw)).expanduser().resolve()
