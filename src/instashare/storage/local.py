"""Storage in a local directory, in the files where obstore's LocalStore keeps its objects.

Uploads bypass obstore: each is written to a partial file beside its object and renamed into
place (see :class:`~instashare.storage.partial_file.PartialFile`); a resumable upload appends
to a file of its own across requests (see :mod:`.local_resumable`). Reads, deletes and listings
go through LocalStore, which finds the files exactly where uploads put them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

from obstore.store import LocalStore

from instashare.storage.base import Storage
from instashare.storage.errors import StorageUnavailableError, translate_errors
from instashare.storage.local_resumable import LocalResumableWriter, finish_file, remove_file
from instashare.storage.partial_file import (
    PartialFile,
    is_partial_file_name,
    remove_stale_partial_files,
)
from instashare.storage.resumable import ResumableUpload, ResumableWriter
from instashare.storage.tasks import close_quietly, run_to_completion, wait_out

# LocalStore's own staging files, "<name>#<digits>": it refuses such names as keys.
_LOCAL_STORE_STAGING: Final = re.compile(r"[^#]*#[0-9]+", re.DOTALL)
# LocalStore takes a name ending like a Windows drive ("c:", "x|") for a directory, "<name>/",
# so it can neither store nor read such an object.
_LOCAL_STORE_DRIVE_LETTER: Final = re.compile(r"[A-Za-z][:|]\Z")
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")


class LocalStorage(Storage):
    """Objects as files under one directory, one directory level per key segment."""

    def __init__(self, root: Path) -> None:
        super().__init__(LocalStore(root, mkdir=True))
        self._root = root

    async def upload(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Write the object's file here rather than through LocalStore, which pulls every chunk
        across threads: that costs more event-loop CPU than writing the chunk.

        Chunks are written with plain blocking write() calls on the event loop's thread: a
        write of up to 256 KiB only reaches the page cache and returns quickly, so the loop
        stalls only briefly. Batching chunks and writing each batch in a worker thread
        measured slower and took more CPU, for the copies and the hand-overs (figures in
        benchmarks/README.md). The fsyncs, which may block for long, run in threads. Creating
        the file and its directories stays on the loop: a few metadata operations per upload.

        ``content_type`` is ignored. The object is on disk (fsynced) when this returns. Keys
        that LocalStore cannot store, or that name a partial file (see
        :meth:`remove_stale_partials`), are refused with ValueError.
        """
        source = aiter(chunks)
        partial: PartialFile | None = None
        try:
            path = _object_path(self._root, key)
            with translate_errors(key, missing_is_not_found=False):
                partial = PartialFile(path)
            async for chunk in source:
                with translate_errors(key, missing_is_not_found=False):
                    partial.write(chunk)
            with translate_errors(key, missing_is_not_found=False):
                await partial.commit()
        except BaseException:
            if partial is not None:
                await partial.discard()
            await wait_out(asyncio.ensure_future(close_quietly(source)))
            raise
        return partial.size

    async def _read_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
        return await asyncio.to_thread(_read_file_ranges, self._root, ranges)

    def _names_no_object(self, key: str) -> bool:
        """Whether ``key`` would name an upload's partial file, which is no object.

        upload() refuses such keys, so no object can be stored under one; the other operations
        report it as missing instead of reaching an upload in progress.
        """
        return is_partial_file_name(key.removesuffix("/").rpartition("/")[2])

    async def _remove_stale_partials(self, older_than: timedelta) -> int:
        """Delete the partial files of uploads whose process died.

        An upload in progress touches its file at least every 256 KiB.
        """
        cutoff = time.time() - older_than.total_seconds()
        with translate_errors("", missing_is_not_found=False):
            return await asyncio.to_thread(remove_stale_partial_files, self._root, cutoff)

    async def open_resumable(self, upload: ResumableUpload) -> ResumableWriter:
        path = _object_path(self._root, upload.scratch_key)
        with translate_errors(upload.scratch_key, missing_is_not_found=False):
            return LocalResumableWriter(upload, path)

    async def finish_resumable(self, upload: ResumableUpload) -> None:
        scratch = _object_path(self._root, upload.scratch_key)
        destination = _object_path(self._root, upload.destination_key)
        with translate_errors(upload.destination_key, missing_is_not_found=False):
            await run_to_completion(lambda: finish_file(scratch, destination, upload.length))

    async def remove_resumable(self, upload: ResumableUpload) -> None:
        scratch = _object_path(self._root, upload.scratch_key)
        with translate_errors(upload.scratch_key, missing_is_not_found=False):
            await run_to_completion(lambda: remove_file(scratch))

    async def _probe(self) -> None:
        # LocalStore lists a vanished directory as empty rather than failing.
        await asyncio.to_thread(_require_writable_dir, self._root)
        await super()._probe()


def _object_path(root: Path, key: str) -> Path:
    """The file in which obstore's LocalStore keeps ``key``: one directory level per segment.

    Like LocalStore, this strips one leading and one trailing "/" and refuses empty segments,
    "." and "..", control characters and the names that LocalStore cannot store (its staging
    files; names ending like a drive letter); every segment is otherwise a file name verbatim.
    Names of partial files are refused as well.
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
        or is_partial_file_name(name)
    ):
        msg = f"invalid storage key {key!r}"
        raise ValueError(msg)
    return root.joinpath(*segments)


def _read_file_ranges(root: Path, ranges: Sequence[tuple[str, int, int]]) -> list[bytes]:
    # Runs in a worker thread: plain pread()s, far cheaper than one obstore call per range.
    found: list[bytes] = []
    for key, start, length in ranges:
        with translate_errors(key):
            descriptor = os.open(_object_path(root, key), os.O_RDONLY)
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
