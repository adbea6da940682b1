"""Resumable uploads in a local directory: one file appended in place, renamed when complete.

The file lives under its own key space (``uploads/<id>``). A checkpoint flushes and fsyncs it
(and, once, the directory entry of a new file) before the caller records the offset. A file
longer than the recorded offset holds bytes of a request that died before its checkpoint: the
next writer truncates them away. Finishing renames the file to its destination and fsyncs both
directories, so the original is durable before the document that names it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Final

from instashare.storage.errors import translate_errors
from instashare.storage.partial_file import fsync_directory, make_dirs
from instashare.storage.resumable import ResumableDataLostError, ResumableUpload, ResumableWriter
from instashare.storage.settings import MERGE_CHUNKS_UP_TO, MIB
from instashare.storage.tasks import run_to_completion, wait_out

# A long request records its progress after every this many bytes: one fsync and one small
# database update each, so a connection lost late in a large request loses little.
_CHECKPOINT_EVERY: Final = 64 * MIB
# While a chunk arrives, what it wrote so far goes out to disk in the background after every
# this many bytes, so the checkpoint's fsync waits only for the tail (as PartialFile does; the
# figures are in benchmarks/README.md).
_WRITEBACK_EVERY: Final = 2 * MIB


class LocalResumableWriter(ResumableWriter):
    def __init__(self, upload: ResumableUpload, path: Path) -> None:
        super().__init__(upload)
        self._path = path
        # Directories whose new entries (the file, its parents) must be fsynced once.
        self._unsynced_dirs = {path.parent} | {d.parent for d in make_dirs(path.parent)}
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size < upload.offset:
                raise ResumableDataLostError(
                    f"{path} holds {size} bytes, fewer than the recorded {upload.offset}"
                )
            if size > upload.offset:
                os.ftruncate(fd, upload.offset)  # bytes of a request that never checkpointed
        except BaseException:
            os.close(fd)
            raise
        if not created:
            self._unsynced_dirs = set()
        self._file = os.fdopen(fd, "r+b", buffering=MERGE_CHUNKS_UP_TO)
        self._file.seek(upload.offset)
        self._written_back = 0  # of pending
        self._writeback: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        # On the event loop's thread, as LocalStorage.upload does: a write reaches the page
        # cache and returns quickly; only the fsyncs go to a thread.
        with translate_errors(self.recorded.scratch_key, missing_is_not_found=False):
            if self._writeback is not None and self._writeback.done():
                self._writeback.result()  # a failed writeback fails the request
                self._writeback = None
            self._file.write(data)
            self.pending += len(data)
            if self._writeback is None and self.pending - self._written_back >= _WRITEBACK_EVERY:
                self._file.flush()
                self._written_back = self.pending
                fd = self._file.fileno()
                self._writeback = asyncio.ensure_future(asyncio.to_thread(os.fdatasync, fd))

    @property
    def checkpoint_due(self) -> bool:
        return self.pending >= _CHECKPOINT_EVERY

    async def _wait_for_writeback(self) -> None:
        if self._writeback is not None:
            writeback, self._writeback = self._writeback, None
            await wait_out(writeback)  # the thread uses the file: never close or cut it before
            writeback.result()

    async def checkpoint(self) -> ResumableUpload:
        with translate_errors(self.recorded.scratch_key, missing_is_not_found=False):
            await self._wait_for_writeback()
            if self.pending or self._unsynced_dirs:
                await run_to_completion(self._sync)
        self.recorded = self.recorded.advanced(offset=self.offset)
        self.pending = self._written_back = 0
        return self.recorded

    def _sync(self) -> None:
        self._file.flush()
        os.fdatasync(self._file.fileno())
        for directory in sorted(self._unsynced_dirs, key=lambda d: len(d.parts)):
            fsync_directory(directory)
        self._unsynced_dirs = set()

    async def discard(self) -> None:
        with contextlib.suppress(OSError):
            await self._wait_for_writeback()
        with translate_errors(self.recorded.scratch_key, missing_is_not_found=False):
            self._file.flush()
            self._file.truncate(self.recorded.offset)
            self._file.seek(self.recorded.offset)
        self.pending = self._written_back = 0

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            await self._wait_for_writeback()
        with contextlib.suppress(OSError):
            self._file.close()


def finish_file(scratch: Path, destination: Path, length: int) -> None:
    """Move the complete file into place, durably; doing it again is harmless (blocking)."""
    try:
        size = os.stat(scratch).st_size
    except FileNotFoundError:
        if destination.exists():
            return  # finished before; the caller did not get to record it
        if length:
            raise ResumableDataLostError(f"neither {scratch} nor {destination} exists") from None
        _create_empty(destination)
        return
    if size < length:
        raise ResumableDataLostError(f"{scratch} holds {size} of {length} bytes")
    if size > length:
        os.truncate(scratch, length)
    created = make_dirs(destination.parent)
    os.replace(scratch, destination)
    for directory in {destination.parent, scratch.parent, *(d.parent for d in created)}:
        fsync_directory(directory)


def _create_empty(destination: Path) -> None:
    created = make_dirs(destination.parent)
    with open(destination, "wb") as file:
        os.fsync(file.fileno())
    for directory in {destination.parent, *(d.parent for d in created)}:
        fsync_directory(directory)


def remove_file(scratch: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(scratch)
