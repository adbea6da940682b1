"""Serving a stored archive under a new name: headers made on the fly around stored data.

:func:`build_layout` describes the archive as literal bytes and ranges of stored objects;
:func:`iter_layout` streams any byte range of it, reading only the stored bytes that range needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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


@dataclass(frozen=True, slots=True)
class StoredRange:
    """``length`` bytes of the stored object starting at ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ArchiveLayout:
    """A virtual archive: literal bytes and stored-object ranges, concatenated in order."""

    segments: tuple[bytes | StoredRange, ...]
    size: int  # total bytes, i.e. the exact Content-Length of the full archive


class StoredDataError(Exception):
    """The stored object did not return the bytes a layout needs (truncated or replaced)."""


def build_layout(info: ZipEntryInfo, name: str, *, modified: datetime) -> ArchiveLayout:
    """Describe a complete single-entry ZIP holding the stored data under ``name``.

    The archive is what a seekable writer would have produced: crc and sizes up front in the
    local header (no data descriptor), ZIP64 records only where a value does not fit 32 bits,
    so ordinary files stay readable by tools without ZIP64 support. The output depends only on
    the arguments, byte for byte, which is what makes ETags and resumed Range requests sound.
    """
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

    entry = make_entry(
        name,
        modified,
        info.method,
        crc32=info.crc32,
        size=info.size,
        compressed_size=info.compressed_size,
    )
    header = local_header(entry, streaming=False)
    directory_offset = len(header) + info.compressed_size
    record = central_record(entry, 0, flags=FLAG_UTF8, force_zip64_version=False)
    trailer = record + end_records(1, len(record), directory_offset)
    segments: list[bytes | StoredRange] = [header]
    if info.compressed_size:  # a stored (method 0) empty file has no data at all
        segments.append(StoredRange(info.data_offset, info.compressed_size))
    segments.append(trailer)
    return ArchiveLayout(
        segments=tuple(segments), size=len(header) + info.compressed_size + len(trailer)
    )


async def iter_layout(
    layout: ArchiveLayout,
    read_range: Callable[[int, int], AsyncIterator[bytes]],
    start: int = 0,
    end: int | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``[start, end)`` of the archive described by ``layout``.

    Stored data is fetched with ``read_range(offset, length)`` for just the overlap with the
    requested range, so a resumed download reads only what it still needs. Raises
    :class:`StoredDataError` if ``read_range`` yields more or fewer bytes than asked for:
    serving a silently short body would break the promised Content-Length.
    """
    stop = layout.size if end is None else end
    if not 0 <= start <= stop <= layout.size:
        raise ValueError(f"range [{start}, {stop}) is outside the archive of {layout.size} bytes")

    segment_start = 0
    for segment in layout.segments:
        if segment_start >= stop:
            break
        length = len(segment) if isinstance(segment, bytes) else segment.length
        segment_end = segment_start + length
        lo = max(start, segment_start)
        hi = min(stop, segment_end)
        if lo < hi:
            if isinstance(segment, bytes):
                yield segment[lo - segment_start : hi - segment_start]
            else:
                wanted = hi - lo
                received = 0
                async for piece in read_range(segment.offset + lo - segment_start, wanted):
                    received += len(piece)
                    if received > wanted:
                        raise StoredDataError(f"read_range returned over {wanted} bytes")
                    if piece:
                        yield piece
                if received != wanted:
                    raise StoredDataError(f"read_range returned {received} of {wanted} bytes")
        segment_start = segment_end
