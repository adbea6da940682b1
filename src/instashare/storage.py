"""The one place where the service touches object storage (a local directory or S3), via obstore.

Keys are opaque strings chosen by the caller (``originals/<uuid>``), never user file names.
Every obstore/OS error is translated in :func:`_storage_errors`, so callers only ever see
:class:`ObjectNotFoundError`, :class:`StorageUnavailableError` or their own exceptions.

Uploads to a local directory bypass obstore (see :class:`_PartialFile`); they write the files
exactly where obstore's LocalStore looks for them, so every other operation still goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import LocalStore, S3Store

if TYPE_CHECKING:
    from obstore import Attributes, GetOptions
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config

__all__ = [
    "ObjectNotFoundError",
    "Storage",
    "StorageError",
    "StorageSettings",
    "StorageUnavailableError",
    "Writer",
]

MIB: Final = 1024 * 1024
# S3 rejects multipart parts below 5 MiB (except the last one) and above 5 GiB.
MIN_PART_SIZE: Final = 5 * MIB
MAX_PART_SIZE: Final = 5 * 1024 * MIB
# Small source chunks (a multipart form parser may hand out a few KiB at a time) are merged up
# to this size before crossing into obstore: each hand-over costs an asyncio task and two GIL
# round-trips, which dominates for tiny chunks, while one extra copy of 256 KiB is cheap.
_MERGE_CHUNKS_UP_TO: Final = 256 * 1024
# How many pending chunks a Writer may queue before write() waits for the upload to catch up.
_WRITER_QUEUE_DEPTH: Final = 8
# Upper bound for check(): it answers "is storage reachable now", not after retries give up.
_PROBE_TIMEOUT_SECONDS: Final = 5.0
# Overall deadline for one streamed GET. Its body is consumed at the pace of the downloading
# client, so the normal request timeout would cut off slow downloads of large files; stalls of
# the storage itself are still caught by the read timeout set alongside it.
_STREAM_TIMEOUT: Final = timedelta(hours=24)
# A local upload is written to ".<name>.<16 hex digits>.part" beside its object and renamed into
# place once complete. Keys whose last segment has that form are refused, so an object and a
# partial file can never be taken for one another (LocalStore itself lists dotfiles as objects).
_PARTIAL_NAME: Final = re.compile(r"\..*\.[0-9a-f]{16}\.part", re.DOTALL)
# The object's name is cut to this many bytes in its partial file's name (NAME_MAX is 255).
_PARTIAL_NAME_BYTES: Final = 200
# LocalStore's own staging files, "<name>#<digits>": it refuses such names as keys.
_LOCAL_STORE_STAGING: Final = re.compile(r"[^#]*#[0-9]+", re.DOTALL)
# LocalStore takes a name ending like a Windows drive ("c:", "x|") for a directory, "<name>/",
# so it can neither store nor read such an object.
_LOCAL_STORE_DRIVE_LETTER: Final = re.compile(r"[A-Za-z][:|]\Z")
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")
# A local upload starts writing its data out to disk, in the background, after every this many
# bytes, so that the fsync that completes it only has the tail left to wait for (see _PartialFile).
_WRITEBACK_EVERY: Final = 32 * MIB

_T = TypeVar("_T")


class StorageError(Exception):
    """Base class of the errors raised by :class:`Storage`."""


class StorageUnavailableError(StorageError):
    """The backend is unreachable, refused the request, or failed with an IO error."""


class ObjectNotFoundError(StorageError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object stored under key {key!r}")
        self.key = key


@dataclass(frozen=True)
class StorageSettings:
    """Plain values describing a backend; the app builds this from its own settings.

    ``url`` is ``file:///absolute/dir`` (a relative path, or a bare path without a scheme, is
    resolved against the working directory) or ``s3://bucket[/prefix]``.
    """

    url: str
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Each upload holds at most part_size * (upload_concurrency + 1) bytes in memory.
    part_size: int = 8 * MIB
    upload_concurrency: int = 2
    connect_timeout: float = 5.0
    # Per request (one part upload, HEAD, DELETE...); also the stall limit of streamed reads.
    request_timeout: float = 60.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            msg = f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"
            raise ValueError(msg)
        if self.upload_concurrency < 1:
            msg = "upload_concurrency must be at least 1"
            raise ValueError(msg)
        if self.connect_timeout <= 0 or self.request_timeout <= 0 or self.max_retries < 0:
            msg = "timeouts must be positive and max_retries not negative"
            raise ValueError(msg)


@contextlib.contextmanager
def _storage_errors(key: str, *, missing_is_not_found: bool = True) -> Iterator[None]:
    """Translate obstore and OS errors into this module's two exceptions.

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


class _ChunkSource:
    """The async iterator handed to ``obstore.put_async``.

    obstore pulls each chunk by running ``__anext__`` as a task of its own on the event loop,
    so cancelling the task that called ``upload()`` does not reach the caller's iterator. This
    class remembers the caller's exception (so that it, not obstore's re-wrapping, propagates)
    and lets ``upload()`` stop the transfer by making the next pull fail, which is the one path
    on which obstore aborts the multipart upload by itself.
    """

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = aiter(chunks)
        self.bytes_read = 0
        self.error: BaseException | None = None
        self._stopped = False
        self._exhausted = False
        self._pulling: asyncio.Task[Any] | None = None

    def __aiter__(self) -> _ChunkSource:
        return self

    async def __anext__(self) -> bytes:
        if self._stopped:
            raise asyncio.CancelledError
        if self._exhausted:
            raise StopAsyncIteration
        self._pulling = asyncio.current_task()
        try:
            return await self._next_merged()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            if not self._stopped:
                self.error = exc
            raise
        finally:
            self._pulling = None

    async def _next_merged(self) -> bytes:
        merged = bytearray()
        while True:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._exhausted = True
                if merged:
                    return bytes(merged)
                raise
            self.bytes_read += len(chunk)
            if not merged and len(chunk) >= _MERGE_CHUNKS_UP_TO:
                return chunk  # large enough already: hand it over without a copy
            merged += chunk
            if len(merged) >= _MERGE_CHUNKS_UP_TO:
                return bytes(merged)

    def stop(self) -> None:
        """Make obstore's current or next pull fail, so that it aborts the upload."""
        self._stopped = True
        if self._pulling is not None:
            self._pulling.cancel()

    async def aclose(self) -> None:
        """Close the caller's iterator if obstore stopped pulling before its end.

        Otherwise an abandoned async generator (say, over a request body) would only run its
        ``finally`` whenever the garbage collector gets to it.
        """
        if self._exhausted or self.error is not None:
            return  # it finished by itself
        await _close_quietly(self._chunks)


async def _close_quietly(iterator: AsyncIterator[bytes]) -> None:
    """Close the caller's iterator, if it can be closed, when an upload stops before its end.

    Otherwise an abandoned async generator (say, over a request body) would only run its
    ``finally`` whenever the garbage collector gets to it. Closing a generator that already
    finished or failed does nothing. Cleanup must not mask the error being raised.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def _wait_out(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, even if the waiting task is cancelled meanwhile.

    Used on cleanup paths: walking away from an in-flight abort is exactly what would leave an
    incomplete multipart upload behind. The caller re-raises its own CancelledError afterwards.
    """
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({future})
    _mark_retrieved(future)


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Silence asyncio's "exception was never retrieved": the caller raises another error."""
    if not future.cancelled():
        future.exception()


async def _queued_chunks(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


class Writer:
    """A sink for one object, obtained from :meth:`Storage.writer`."""

    def __init__(self, queue: asyncio.Queue[bytes | None], upload: asyncio.Task[int]) -> None:
        self._queue = queue
        self._upload = upload
        self._closed = False
        self.bytes_written = 0
        # Once the upload has ended (it can only fail while data is still expected), nothing
        # reads the queue any more: empty it so that a write() blocked on a full queue wakes up
        # and reports the failure instead of waiting forever.
        upload.add_done_callback(lambda _: self._discard_queued())

    def _discard_queued(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def _raise_if_unusable(self) -> None:
        if self._closed:
            msg = "the writer is closed"
            raise RuntimeError(msg)
        if self._upload.done():
            self._upload.result()  # raises the upload's error
            msg = "the upload ended before the writer was closed"  # pragma: no cover
            raise RuntimeError(msg)  # pragma: no cover

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for upload; waits while the upload is behind (bounded memory)."""
        self._raise_if_unusable()
        if not data:
            return
        # The queue holds references until upload; a mutable buffer could change under it.
        chunk = bytes(data) if not isinstance(data, bytes) else data
        await self._queue.put(chunk)
        self.bytes_written += len(chunk)
        self._raise_if_unusable()

    async def _commit(self) -> None:
        self._raise_if_unusable()
        self._closed = True
        await self._queue.put(None)
        await asyncio.shield(self._upload)


async def _run_to_completion(func: Callable[[], _T]) -> _T:
    """Run blocking ``func`` in a thread; if cancelled, wait for it before raising CancelledError.

    A thread cannot be stopped: returning while it still uses a file would let the cleanup close
    that file under it.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await _wait_out(future)
        raise


def _local_object_path(root: Path, key: str) -> Path:
    """The file in which obstore's LocalStore keeps ``key``: one directory level per segment.

    Like LocalStore, this strips one leading and one trailing "/" and refuses empty segments,
    "." and "..", control characters and the names that LocalStore cannot store (its staging
    files; names ending like a drive letter); every segment is otherwise a file name verbatim.
    Names of this module's partial files are refused as well.
    """
    stripped = key.removeprefix("/").removesuffix("/")
    segments = stripped.split("/")
    name = segments[-1]
    if (
        not stripped
        or any(segment in ("", ".", "..") for segment in segments)
        or _CONTROL_CHARACTER.search(stripped)
        or _LOCAL_STORE_STAGING.fullmatch(name)
        or _LOCAL_STORE_DRIVE_LETTER.search(name)
        or _PARTIAL_NAME.fullmatch(name)
    ):
        msg = f"invalid storage key {key!r}"
        raise ValueError(msg)
    return root.joinpath(*segments)


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return the ones created here, top first."""
    if directory.is_dir():
        return []
    created = _make_dirs(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return created  # made meanwhile by someone else, or a file in the way (open reports it)
    return [*created, directory]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# os.fdatasync is missing on macOS; fsync does the same there, plus the metadata.
_fdatasync: Final[Callable[[int], None]] = getattr(os, "fdatasync", os.fsync)


class _PartialFile:
    """A local object being written: a temporary file beside it, renamed into place when complete.

    The temporary file is created with O_EXCL under a random name, so concurrent uploads to one
    key never share one; the last upload to complete wins, as with obstore.

    Durability. When an upload returns, its object is on disk: the file is fsynced before the
    rename and the directory after it. The service records the object in PostgreSQL right
    after the upload, and that commit is durable; without the fsyncs, a crash in the next
    ~30 s (the kernel's writeback delay) could leave a committed document whose original is
    empty or missing. The cost, measured on this host's ext4/virtio disk (~2.7 GB/s): an fsync
    of 1 GiB of dirty pages takes ~0.4 s, one of a directory ~0.2 ms. Left to the end, that
    cuts the throughput of a 1 GiB upload by ~20% (1 GiB uploads through a real server, median
    of 8: 508 MB/s against 628 MB/s without any fsync; 530 MB/s through obstore's multipart
    put, which does not fsync). So after every 32 MiB a background fdatasync writes out what
    has arrived while the upload goes on, and the final fsync waits only for the tail:
    601 MB/s. The price is that a write() now and then waits behind the writeback: at
    600 MB/s the loop stalled for up to ~15 ms at worst, against ~3 ms with the fsync at the
    end only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._in_place = False
        self._written_back = 0
        self._writeback: asyncio.Future[None] | None = None
        # A new directory entry is durable only once its directory is fsynced.
        self._directories = {path.parent}
        self._directories.update(created.parent for created in _make_dirs(path.parent))
        name = path.name.encode()[:_PARTIAL_NAME_BYTES].decode(errors="ignore")
        self.temp = path.with_name(f".{name}.{secrets.token_hex(8)}.part")
        # "x" is O_CREAT | O_EXCL; the mode is 0o666 less the umask, like LocalStore's files.
        # The buffer merges small chunks into writes of up to 256 KiB; larger ones go through.
        self._file = open(self.temp, "xb", buffering=_MERGE_CHUNKS_UP_TO)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        """Write ``chunk`` on the event loop's thread (see Storage._upload_local for why)."""
        if self._writeback is not None and self._writeback.done():
            self._writeback.result()  # a failed writeback fails the upload
            self._writeback = None
        self._file.write(chunk)
        self.size += len(chunk)
        if self.size - self._written_back >= _WRITEBACK_EVERY and self._writeback is None:
            self._written_back = self.size
            fd = self._file.fileno()
            self._writeback = asyncio.ensure_future(asyncio.to_thread(_fdatasync, fd))

    async def commit(self) -> None:
        """Make the object durable, then visible."""
        if self._writeback is not None:
            # If cancelled here, discard() waits for the writeback before closing the file.
            await asyncio.shield(self._writeback)
        await _run_to_completion(self._commit)

    def _commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.path)
        self._in_place = True
        for directory in self._directories:
            _fsync_directory(directory)

    async def discard(self) -> None:
        """Remove the temporary file, or the object if the commit got that far; never raises."""
        if self._writeback is not None:
            await _wait_out(self._writeback)  # the thread still uses the file
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path if self._in_place else self.temp)


def _stale_partials(root: Path, cutoff: float) -> int:
    removed = 0
    for directory, _, names in os.walk(root):
        for name in names:
            if not _PARTIAL_NAME.fullmatch(name):
                continue
            path = os.path.join(directory, name)
            # Gone meanwhile: its upload completed or failed, or another cleanup was faster.
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
    return removed


class Storage:
    """Async access to one bucket/prefix or local directory."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        stream_store: ObjectStore | None = None,
        part_size: int = 8 * MIB,
        upload_concurrency: int = 2,
        local_root: Path | None = None,
    ) -> None:
        self._store = store
        # Streamed reads use a client whose overall timeout fits slow downloads.
        self._stream_store = stream_store if stream_store is not None else store
        self._part_size = part_size
        self._upload_concurrency = upload_concurrency
        # Set for a local directory: uploads are then written by this module, not by `store`.
        self._local_root = local_root

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> Storage:
        parts = urlsplit(settings.url)
        scheme = parts.scheme.lower()
        if scheme in ("file", ""):
            return cls._local(_local_path(settings.url, parts.scheme), settings)
        if scheme == "s3":
            return cls._s3(parts.netloc, parts.path.strip("/"), settings)
        msg = f"unsupported storage URL scheme {parts.scheme!r}: use file:// or s3://"
        raise ValueError(msg)

    @classmethod
    def _local(cls, root: Path, settings: StorageSettings) -> Storage:
        store = LocalStore(root, mkdir=True)
        return cls(
            store,
            part_size=settings.part_size,
            upload_concurrency=settings.upload_concurrency,
            local_root=root,
        )

    @classmethod
    def _s3(cls, bucket: str, prefix: str, settings: StorageSettings) -> Storage:
        if not bucket:
            msg = "an s3:// storage URL needs a bucket: s3://bucket[/prefix]"
            raise ValueError(msg)
        client: ClientConfig = {
            "connect_timeout": timedelta(seconds=settings.connect_timeout),
            "timeout": timedelta(seconds=settings.request_timeout),
        }
        # obstore's defaults retry for up to 3 minutes, so an outage would look like a hang;
        # a few quick retries ride out blips and then report the failure.
        retry: RetryConfig = {
            "max_retries": settings.max_retries,
            "retry_timeout": timedelta(seconds=settings.request_timeout),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        }
        config: S3Config = {"region": settings.s3_region}
        if settings.s3_endpoint:
            # MinIO and other self-hosted endpoints: path-style URLs, plain http allowed.
            config["endpoint"] = settings.s3_endpoint
            config["virtual_hosted_style_request"] = False
            client["allow_http"] = settings.s3_endpoint.lower().startswith("http://")
        # Keys left unset fall back to obstore's usual AWS chain (environment, instance role).
        if settings.s3_access_key_id is not None:
            config["access_key_id"] = settings.s3_access_key_id
        if settings.s3_secret_access_key is not None:
            config["secret_access_key"] = settings.s3_secret_access_key

        def build(client_options: ClientConfig) -> S3Store:
            return S3Store(
                bucket,
                prefix=prefix or None,
                config=config,
                client_options=client_options,
                retry_config=retry,
            )

        stream_client: ClientConfig = {
            **client,
            "timeout": _STREAM_TIMEOUT,
            "read_timeout": timedelta(seconds=settings.request_timeout),
        }
        return cls(
            build(client),
            stream_store=build(stream_client),
            part_size=settings.part_size,
            upload_concurrency=settings.upload_concurrency,
        )

    async def upload(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Stream ``chunks`` into the object ``key`` and return the number of bytes written.

        Memory stays bounded whatever the size: S3 gets a multipart upload, a local directory
        a temporary file renamed into place. The object appears only once complete. If
        ``chunks`` raises, that very exception propagates; if the calling task is cancelled,
        CancelledError propagates. In both cases the upload is aborted first: no object, no
        incomplete multipart upload and no temporary file is left behind.

        A local directory ignores ``content_type``. There, the object is on disk (fsynced)
        when this returns, and keys that LocalStore cannot store, or that name a partial file
        (see :meth:`remove_stale_partials`), are refused with ValueError.
        """
        if self._local_root is not None:
            return await self._upload_local(self._local_root, key, chunks)
        source = _ChunkSource(chunks)
        attributes: Attributes | None = None
        if content_type:
            attributes = {"Content-Type": content_type}
        put = asyncio.ensure_future(
            obstore.put_async(
                self._store,
                key,
                source,
                attributes=attributes,
                use_multipart=True,
                chunk_size=self._part_size,
                max_concurrency=self._upload_concurrency,
            )
        )
        try:
            # asyncio.wait, not await: cancelling this task must not cancel `put`, because
            # obstore drops a cancelled upload without aborting it on S3.
            await asyncio.wait({put})
        except asyncio.CancelledError:
            await self._abandon_upload(key, put, source)
            raise
        await source.aclose()
        if source.error is not None:
            _mark_retrieved(put)
            raise source.error
        with _storage_errors(key):
            put.result()
        return source.bytes_read

    async def _upload_local(self, root: Path, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Write the object's file here: obstore's LocalStore pulls every chunk across threads,
        which costs more event-loop CPU than writing the chunk.

        Chunks are written with plain blocking write() calls on the event loop's thread: a
        write of up to 256 KiB into the page cache takes tens of microseconds. Measured, for
        1 GiB in 64 KiB chunks without a server, that took 0.3 s of CPU and stalled the loop
        for 3 ms at most. Batching chunks to 1 MiB and writing each batch in a worker thread
        (asyncio.to_thread, the next batch gathered meanwhile) took more CPU for the copies and
        the hand-overs and was slower: through a real server, 2.5 s instead of 1.75 s of
        server CPU per GiB, and 440 instead of 508 MB/s (both with the fsync at the end).
        The fsyncs, which may block for long, run in threads. Creating the file and its
        directories stays on the loop: a few metadata operations per upload.
        """
        source = aiter(chunks)
        partial: _PartialFile | None = None
        try:
            path = _local_object_path(root, key)
            with _storage_errors(key, missing_is_not_found=False):
                partial = _PartialFile(path)
            async for chunk in source:
                with _storage_errors(key, missing_is_not_found=False):
                    partial.write(chunk)
            with _storage_errors(key, missing_is_not_found=False):
                await partial.commit()
        except BaseException:
            if partial is not None:
                await partial.discard()
            await _wait_out(asyncio.ensure_future(_close_quietly(source)))
            raise
        return partial.size

    async def _abandon_upload(
        self, key: str, put: asyncio.Future[Any], source: _ChunkSource
    ) -> None:
        source.stop()
        await _wait_out(put)
        await _wait_out(asyncio.ensure_future(source.aclose()))
        if put.cancelled() or put.exception() is not None:
            return
        # The upload completed before the stop reached it: remove the object the caller gave up.
        await _wait_out(asyncio.ensure_future(self.delete(key)))

    @contextlib.asynccontextmanager
    async def writer(self, key: str, *, content_type: str | None = None) -> AsyncIterator[Writer]:
        """Write an object piece by piece: committed on clean exit, aborted on any exception.

        A storage failure surfaces from a later ``write()`` or from the exit of the block.
        """
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_WRITER_QUEUE_DEPTH)
        upload = asyncio.ensure_future(
            self.upload(key, _queued_chunks(queue), content_type=content_type)
        )
        sink = Writer(queue, upload)
        try:
            yield sink
            await sink._commit()
        except BaseException:
            sink._closed = True
            # upload() turns its cancellation into an abort plus cleanup.
            upload.cancel()
            await _wait_out(upload)
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
        if self._names_partial_file(key):
            raise ObjectNotFoundError(key)
        with _storage_errors(key):
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
            with _storage_errors(key):
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
            yield chunk

    async def read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        """The bytes of several small ``(key, start, length)`` ranges, in order, held in memory.

        For ranges known to lie inside their objects (a share's many small entries), where a
        request per range would cost more than the bytes: a local store reads them all in one
        worker thread, S3 fetches them concurrently. A range past an object's end comes back
        short; the caller checks lengths.
        """
        for _, start, length in ranges:
            if start < 0 or length < 1:
                msg = "start must not be negative and length must be positive"
                raise ValueError(msg)
        for key, _, _ in ranges:
            if self._names_partial_file(key):
                raise ObjectNotFoundError(key)
        if self._local_root is not None:
            return await asyncio.to_thread(_read_local_ranges, self._local_root, ranges)

        async def one(key: str, start: int, length: int) -> bytes:
            with _storage_errors(key):
                data = await obstore.get_range_async(self._store, key, start=start, length=length)
            return bytes(data)

        return list(await asyncio.gather(*[one(*item) for item in ranges]))

    async def size(self, key: str) -> int:
        if self._names_partial_file(key):
            raise ObjectNotFoundError(key)
        with _storage_errors(key):
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
        if self._names_partial_file(key):
            return
        # S3 ignores missing keys, LocalStore raises FileNotFoundError.
        with contextlib.suppress(ObjectNotFoundError), _storage_errors(key):
            await obstore.delete_async(self._store, key)

    def _names_partial_file(self, key: str) -> bool:
        """Whether ``key`` would name a local upload's partial file, which is no object.

        upload() refuses such keys, so no object can be stored under one; the other operations
        report it as missing instead of reaching an upload in progress.
        """
        name = key.removesuffix("/").rpartition("/")[2]
        return self._local_root is not None and _PARTIAL_NAME.fullmatch(name) is not None

    async def remove_stale_partials(self, older_than: timedelta) -> int:
        """Delete partial files of local uploads last written more than ``older_than`` ago.

        They are left behind only when the process dies during an upload (kill -9, power loss).
        An upload in progress touches its file at least every 256 KiB, so ``older_than`` only
        has to exceed the longest stall of a client. Returns how many files were deleted; S3
        keeps nothing of the kind (an aborted process leaves an incomplete multipart upload,
        which a bucket lifecycle rule expires), so there it returns 0.
        """
        if older_than < timedelta(0):
            msg = "older_than must not be negative"
            raise ValueError(msg)
        if self._local_root is None:
            return 0
        cutoff = time.time() - older_than.total_seconds()
        with _storage_errors("", missing_is_not_found=False):
            return await asyncio.to_thread(_stale_partials, self._local_root, cutoff)

    async def check(self) -> None:
        """Cheap health probe: raise StorageUnavailableError unless storage answers now."""
        with _storage_errors(""):
            async with asyncio.timeout(_PROBE_TIMEOUT_SECONDS):
                if self._local_root is not None:
                    # LocalStore lists a vanished directory as empty rather than failing.
                    await asyncio.to_thread(_require_writable_dir, self._local_root)
                # A one-level listing proves the endpoint, the credentials and the bucket (a
                # missing bucket is a GenericError, not a not-found, in obstore).
                await obstore.list_with_delimiter_async(self._store)


def _read_local_ranges(root: Path, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
    # Runs in a worker thread: plain pread()s, far cheaper than one obstore call per range.
    found: list[bytes] = []
    for key, start, length in ranges:
        with _storage_errors(key):
            descriptor = os.open(_local_object_path(root, key), os.O_RDONLY)
            try:
                found.append(os.pread(descriptor, length, start))
            finally:
                os.close(descriptor)
    return found


def _require_writable_dir(root: Path) -> None:
    if not root.is_dir():
        msg = f"storage directory {root} does not exist"
        raise StorageUnavailableError(msg)
    if not os.access(root, os.W_OK | os.X_OK):
        msg = f"storage directory {root} is not writable"
        raise StorageUnavailableError(msg)


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
