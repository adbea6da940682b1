"""A local object being written: a partial file beside it, renamed into place when complete."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final

from instashare.storage.settings import MERGE_CHUNKS_UP_TO, MIB
from instashare.storage.tasks import run_to_completion, wait_out

# A partial file is named ".<name>.<16 hex digits>.part", beside its object.
_PARTIAL_NAME: Final = re.compile(r"\..*\.[0-9a-f]{16}\.part", re.DOTALL)
# The object's name is cut to this many bytes in its partial file's name (NAME_MAX is 255).
_PARTIAL_NAME_BYTES: Final = 200
# After every this many bytes, the data written so far starts going out to disk in the
# background, so that the fsync that completes the object only has the tail left to wait for.
_WRITEBACK_EVERY: Final = 32 * MIB

# os.fdatasync is missing on macOS; fsync does the same there, plus the metadata.
_fdatasync: Final[Callable[[int], None]] = getattr(os, "fdatasync", os.fsync)


def is_partial_file_name(name: str) -> bool:
    """Whether a file (or key segment) is named like a partial file."""
    return _PARTIAL_NAME.fullmatch(name) is not None


class PartialFile:
    """A temporary file beside the object's path, renamed into place when complete.

    The temporary file is created with O_EXCL under a random name, so concurrent uploads to one
    key never share one; the last upload to complete wins, as with obstore.

    Durability. When :meth:`commit` returns, the object is on disk: the file is fsynced before
    the rename and the directory after it. The service records the object in PostgreSQL right
    after the upload, and that commit is durable; without the fsyncs, a crash before the kernel
    writes dirty pages back on its own (after ~30 s by default) could leave a committed
    document whose original is empty or missing. One fsync of a whole large file at the end
    costs a noticeable share of upload throughput, so after every ``_WRITEBACK_EVERY`` bytes a
    background fdatasync writes out what has arrived while the upload goes on, and the final
    fsync waits only for the tail. The price is that a write() now and then waits behind the
    writeback, stalling the event loop a little longer. The figures behind this choice are in
    benchmarks/README.md.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._in_place = False
        self._written_back = 0
        self._writeback: asyncio.Future[None] | None = None
        # A new directory entry is durable only once its directory is fsynced.
        self._directories = {path.parent}
        self._directories.update(created.parent for created in make_dirs(path.parent))
        name = path.name.encode()[:_PARTIAL_NAME_BYTES].decode(errors="ignore")
        self.temp = path.with_name(f".{name}.{secrets.token_hex(8)}.part")
        # "x" is O_CREAT | O_EXCL; the mode is 0o666 less the umask, like LocalStore's files.
        # The buffer merges small chunks into writes of up to 256 KiB; larger ones go through.
        self._file = open(self.temp, "xb", buffering=MERGE_CHUNKS_UP_TO)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        """Write ``chunk`` on the event loop's thread (see LocalStorage.upload for why)."""
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
        await run_to_completion(self._sync_and_rename)

    def _sync_and_rename(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.path)
        self._in_place = True
        for directory in self._directories:
            fsync_directory(directory)

    async def discard(self) -> None:
        """Remove the temporary file, or the object if the commit got that far; never raises."""
        if self._writeback is not None:
            await wait_out(self._writeback)  # the thread still uses the file
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path if self._in_place else self.temp)


def make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return the ones created here, top first."""
    if directory.is_dir():
        return []
    created = make_dirs(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return created  # made meanwhile by someone else, or a file in the way (open reports it)
    return [*created, directory]


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_partial_files(root: Path, cutoff: float) -> int:
    """Delete the partial files under ``root`` last modified before ``cutoff`` (a timestamp)."""
    removed = 0
    for directory, _, names in os.walk(root):
        for name in names:
            if not is_partial_file_name(name):
                continue
            path = os.path.join(directory, name)
            # Gone meanwhile: its upload completed or failed, or another cleanup was faster.
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
    return removed
