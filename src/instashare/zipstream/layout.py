"""Serving stored archives under new names: headers made on the fly around stored data.

:func:`build_archive` describes a ZIP of one or many entries, each entry's data being a range of
its own stored object, as literal bytes and stored ranges; :func:`build_layout` is the
single-entry case. :func:`iter_layout` streams any byte range of such an archive, reading only
the stored bytes that range needs, optionally fetching small entries ahead of time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime

from instashare.zipstream.records import (
    FLAG_UTF8,
    METHOD_DEFLATED,
    METHOD_STORED,
    SENTINEL32,
    central_record,
    end_records,
    local_header,
    make_entry,
)
from instashare.zipstream.writer import ZipEntryInfo

# Stored ranges up to this size are read whole, ahead of their turn, when read-ahead is asked
# for: many small entries then cost one storage round trip's latency in total, not one each.
# Larger ranges are streamed in their turn, so read-ahead holds at most depth x this in memory.
READ_AHEAD_MAX_BYTES = 256 * 1024

ReadRange = Callable[[str, int, int], AsyncIterator[bytes]]
"""``read_range(source, offset, length)``: stream ``length`` bytes of object ``source``."""
ReadBatch = Callable[[Sequence["StoredRange"]], Awaitable[Sequence[bytes]]]
"""``read_batch(ranges)``: the bytes of several small ranges at once, in order."""


@dataclass(frozen=True, slots=True)
class StoredRange:
    """``length`` bytes of the stored object ``source`` starting at ``offset``."""

    offset: int
    length: int
    source: str = ""  # which object; "" when a layout reads one object only


@dataclass(frozen=True, slots=True)
class ArchiveLayout:
    """A virtual archive: literal bytes and stored-object ranges, concatenated in order."""

    segments: tuple[bytes | StoredRange, ...]
    size: int  # total bytes, i.e. the exact Content-Length of the full archive


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One entry of an archive to build: stored data (in object ``source``) under a name."""

    info: ZipEntryInfo
    name: str
    modified: datetime
    source: str = ""


class StoredDataError(Exception):
    """The stored object did not return the bytes a layout needs (truncated or replaced)."""


def build_layout(info: ZipEntryInfo, name: str, *, modified: datetime) -> ArchiveLayout:
    """Describe a complete single-entry ZIP holding the stored data under ``name``."""
    return build_archive([ArchiveEntry(info, name, modified)])


def build_archive(entries: Sequence[ArchiveEntry]) -> ArchiveLayout:
    """Describe a complete ZIP holding every entry's stored data under its name, in order.

    The archive is what a seekable writer would have produced: crc and sizes up front in each
    local header (no data descriptors), ZIP64 records only where a value does not fit (a size
    or an offset of 4 GiB or more, 65,535 entries or more), so ordinary archives stay readable
    by tools without ZIP64 support. The output depends only on the arguments, byte for byte,
    which is what makes ETags and resumed Range requests sound. Names must be unique; that is
    the caller's business (it knows how it wants them told apart).
    """
    segments: list[bytes | StoredRange] = []
    directory: list[bytes] = []
    offset = 0
    for item in entries:
        info = item.info
        _check(info)
        entry = make_entry(
            item.name,
            item.modified,
            info.method,
            crc32=info.crc32,
            size=info.size,
            compressed_size=info.compressed_size,
        )
        header = local_header(entry, streaming=False)
        segments.append(header)
        if info.compressed_size:  # a stored (method 0) empty file has no data at all
            segments.append(StoredRange(info.data_offset, info.compressed_size, item.source))
        directory.append(central_record(entry, offset, flags=FLAG_UTF8, force_zip64_version=False))
        offset += len(header) + info.compressed_size
    records = b"".join(directory)
    trailer = records + end_records(len(directory), len(records), offset)
    segments.append(trailer)
    return ArchiveLayout(segments=tuple(segments), size=offset + len(trailer))


def _check(info: ZipEntryInfo) -> None:
    if info.method not in (METHOD_STORED, METHOD_DEFLATED):
        raise ValueError(f"unsupported compression method {info.method}")
    if info.method == METHOD_STORED and info.compressed_size != info.size:
        raise ValueError("a stored entry must have compressed_size == size")
    if min(info.size, info.compressed_size, info.data_offset) < 0:
        raise ValueError("sizes and offsets must be non-negative")
    if not 0 <= info.crc32 <= SENTINEL32:
        raise ValueError("crc32 must be an unsigned 32-bit value")
    if info.data_offset + info.compressed_size > info.archive_size:
        raise ValueError("the entry's data extends past the end of the stored archive")


async def iter_layout(
    layout: ArchiveLayout,
    read_range: ReadRange,
    start: int = 0,
    end: int | None = None,
    *,
    read_ahead: int = 0,
    read_batch: ReadBatch | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``[start, end)`` of the archive described by ``layout``.

    Stored data is fetched with ``read_range(source, offset, length)`` for just the overlap with
    the requested range, so a resumed download reads only what it still needs. With
    ``read_ahead`` > 0, ranges of at most ``READ_AHEAD_MAX_BYTES`` are fetched ahead of their
    turn, in batches of up to ``read_ahead`` (two batches at most at a time) while earlier bytes
    are being sent: with ``read_batch`` when given (one call per batch), otherwise with
    concurrent ``read_range`` calls. Raises :class:`StoredDataError` if a read yields more or
    fewer bytes than asked for: serving a silently short body would break the promised
    Content-Length.
    """
    stop = layout.size if end is None else end
    if not 0 <= start <= stop <= layout.size:
        raise ValueError(f"range [{start}, {stop}) is outside the archive of {layout.size} bytes")
    pieces = _pieces(layout, start, stop)
    # Nested generators are closed explicitly (aclosing), so a consumer that stops early stops
    # every read at once instead of leaving them to the garbage collector.
    if read_ahead < 1:
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece
            else:
                async with contextlib.aclosing(_read_exactly(read_range, piece)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        return
    ahead = _with_read_ahead(pieces, read_range, read_ahead, read_batch)
    async with contextlib.aclosing(ahead) as chunks:
        async for chunk in chunks:
            yield chunk


def _pieces(layout: ArchiveLayout, start: int, stop: int) -> Iterator[bytes | StoredRange]:
    """The parts of ``[start, stop)``: slices of literal bytes and clipped stored ranges."""
    segment_start = 0
    for segment in layout.segments:
        if segment_start >= stop:
            return
        length = len(segment) if isinstance(segment, bytes) else segment.length
        segment_end = segment_start + length
        lo = max(start, segment_start)
        hi = min(stop, segment_end)
        if lo < hi:
            if isinstance(segment, bytes):
                yield segment[lo - segment_start : hi - segment_start]
            else:
                yield StoredRange(segment.offset + lo - segment_start, hi - lo, segment.source)
        segment_start = segment_end


async def _read_exactly(read_range: ReadRange, piece: StoredRange) -> AsyncGenerator[bytes, None]:
    received = 0
    chunks = read_range(piece.source, piece.offset, piece.length)
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > piece.length:
                raise StoredDataError(f"read_range returned over {piece.length} bytes")
            if chunk:
                yield chunk
    finally:
        # Storage streams hold connections or file handles: release them now, not at GC.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    if received != piece.length:
        raise StoredDataError(f"read_range returned {received} of {piece.length} bytes")


async def _read_whole(read_range: ReadRange, piece: StoredRange) -> bytes:
    async with contextlib.aclosing(_read_exactly(read_range, piece)) as chunks:
        return b"".join([chunk async for chunk in chunks])


class _Batch:
    """Small ranges read together; ``task`` is set once the batch is complete and started."""

    def __init__(self) -> None:
        self.ranges: list[StoredRange] = []
        self.task: asyncio.Task[Sequence[bytes]] | None = None


async def _fetch(
    ranges: Sequence[StoredRange], read_range: ReadRange, read_batch: ReadBatch | None
) -> Sequence[bytes]:
    if read_batch is None:
        return await asyncio.gather(*[_read_whole(read_range, piece) for piece in ranges])
    data = await read_batch(ranges)
    for piece, got in zip(ranges, data, strict=True):
        if len(got) != piece.length:
            raise StoredDataError(f"read_batch returned {len(got)} of {piece.length} bytes")
    return data


async def _with_read_ahead(
    pieces: Iterator[bytes | StoredRange],
    read_range: ReadRange,
    depth: int,
    read_batch: ReadBatch | None,
) -> AsyncGenerator[bytes, None]:
    # In order: literal bytes, places in batches of small ranges, and at most one large range
    # (last), streamed when its turn comes; nothing past it is looked at before then.
    window: deque[bytes | StoredRange | tuple[_Batch, int]] = deque()
    collecting: _Batch | None = None
    started: list[_Batch] = []  # started and not yet fully sent, oldest first
    exhausted = False

    def start(batch: _Batch) -> None:
        nonlocal collecting
        batch.task = asyncio.ensure_future(_fetch(batch.ranges, read_range, read_batch))
        started.append(batch)
        if batch is collecting:
            collecting = None

    def fill() -> None:
        nonlocal collecting, exhausted
        while not exhausted and len(started) < 2:
            if window and isinstance(window[-1], StoredRange):
                break
            piece = next(pieces, None)
            if piece is None:
                exhausted = True
            elif isinstance(piece, StoredRange) and piece.length <= READ_AHEAD_MAX_BYTES:
                if collecting is None:
                    collecting = _Batch()
                window.append((collecting, len(collecting.ranges)))
                collecting.ranges.append(piece)
                if len(collecting.ranges) >= depth:
                    start(collecting)
            else:
                if collecting is not None and isinstance(piece, StoredRange):
                    start(collecting)
                window.append(piece)
        if exhausted and collecting is not None:
            start(collecting)

    try:
        fill()
        while window:
            item = window.popleft()
            if isinstance(item, bytes):
                yield item
            elif isinstance(item, StoredRange):
                async with contextlib.aclosing(_read_exactly(read_range, item)) as chunks:
                    async for chunk in chunks:
                        yield chunk
            else:
                batch, index = item
                if batch.task is None:
                    start(batch)
                assert batch.task is not None
                data = await batch.task
                if index == len(batch.ranges) - 1:
                    started.remove(batch)
                yield data[index]
            fill()
    finally:
        # The consumer stopped early (a client went away): nobody wants the rest.
        for batch in started:
            if batch.task is not None:
                batch.task.cancel()
        for batch in started:
            if batch.task is not None:
                with contextlib.suppress(BaseException):
                    await batch.task
