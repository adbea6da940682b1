"""Single-entry ZIP archives: streaming compression and rename-without-recompression.

Every upload is compressed once, as it streams in, into a one-entry ZIP that is kept in object
storage. Downloads must carry the document's *current* name, which may differ from the name it
had when it was compressed. The entry name lives only in the headers around the deflate data, so
a download is assembled from freshly generated headers plus a byte range of the stored object:
renaming a document never touches the stored object and never recompresses anything.

Two halves:

* :func:`write_zip` compresses an async byte stream into a ZIP written through an append-only
  sink, in constant memory, and returns the :class:`ZipEntryInfo` needed later.
* :func:`build_layout` describes a new archive (a different name and time) as bytes to emit and
  ranges of the stored object to copy; :func:`iter_layout` streams any byte range of it.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from isal import isal_zlib

__all__ = [
    "DEFAULT_LEVEL",
    "METHOD_DEFLATED",
    "METHOD_STORED",
    "WRITE_SIZE",
    "ZIP64_LIMIT",
    "ArchiveLayout",
    "StoredDataError",
    "StoredRange",
    "ZipEntryInfo",
    "build_layout",
    "iter_layout",
    "write_zip",
]

# ISA-L's strongest level (it only has 0-3). Measured with benchmarks/compress.py, it stays a few
# percent larger than Info-ZIP `zip -6` at several times its speed; levels 1-2 are barely faster
# but larger. On pure text the gap is wider: ISA-L buys its speed with shallower match searches,
# and no ISA-L level closes that. Figures in benchmarks/README.md.
DEFAULT_LEVEL = 3

# zlib-style memLevel; python-isal maps it to the size of ISA-L's level buffer. A smaller buffer
# ends deflate blocks sooner, so Huffman tables re-adapt where content shifts (text <-> binary):
# measured smaller output on mixed and binary data, no change on plain text, no noticeable speed
# cost. The default (8) was measurably worse; 2-5 were equivalent (benchmarks/README.md).
_MEM_LEVEL = 3

# Compressed output is gathered into pieces at least this large before reaching the sink:
# every sink call has fixed costs (an await, buffer bookkeeping, maybe a network round trip),
# and the storage layer has to assemble >= 5 MiB multipart parts anyway.
WRITE_SIZE = 1 << 20

# Any size or offset >= this no longer fits a classic 32-bit ZIP field: 0xFFFFFFFF itself is the
# "look in the ZIP64 record" sentinel, so it cannot be stored as a literal value. Read at call
# time (never captured in defaults) so tests can lower it to exercise the ZIP64 paths cheaply.
ZIP64_LIMIT = 0xFFFFFFFF

METHOD_STORED = 0
METHOD_DEFLATED = 8

_SENTINEL32 = 0xFFFFFFFF
_LOCAL_SIG = 0x04034B50
_CENTRAL_SIG = 0x02014B50
_DESCRIPTOR_SIG = 0x08074B50
_EOCD64_SIG = 0x06064B50
_EOCD64_LOCATOR_SIG = 0x07064B50
_EOCD_SIG = 0x06054B50

_FLAG_DATA_DESCRIPTOR = 1 << 3  # crc/sizes follow the data instead of preceding it
_FLAG_UTF8 = 1 << 11  # the name is UTF-8, not the legacy IBM437 code page

# "Version needed to extract" values from APPNOTE 4.4.3.2.
_VERSION_STORED = 10
_VERSION_DEFLATE = 20
_VERSION_ZIP64 = 45
# "Version made by": host system 3 (Unix) in the high byte, so unzip honours the Unix mode in
# the external attributes; APPNOTE 4.5 in the low byte.
_VERSION_MADE_BY = (3 << 8) | _VERSION_ZIP64
# Regular file, rw-r--r--: predictable permissions on extraction instead of whatever umask-derived
# default the extracting tool would pick for an archive with no attributes.
_EXTERNAL_ATTRS = 0o100644 << 16

_ZIP64_EXTRA_ID = 0x0001
_TIMESTAMP_EXTRA_ID = 0x5455  # Info-ZIP "UT" extended timestamp

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_EOCD64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")


@dataclass(frozen=True, slots=True)
class ZipEntryInfo:
    """What has to be remembered about a stored archive to serve it later under any name."""

    crc32: int
    size: int  # uncompressed bytes
    compressed_size: int  # bytes of the raw deflate stream
    data_offset: int  # offset of the deflate data inside the stored archive
    archive_size: int  # total bytes of the stored archive
    method: int  # METHOD_DEFLATED (write_zip never stores), METHOD_STORED accepted by build_layout


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


@dataclass(frozen=True, slots=True)
class _Entry:
    """Everything the header builders need, already validated and encoded."""

    name: bytes
    dos_time: int
    dos_date: int
    extra_time: bytes  # "UT" extra field, or b"" when the time does not fit it
    method: int
    crc32: int
    size: int
    compressed_size: int


async def write_zip(
    chunks: AsyncIterator[bytes],
    name: str,
    write: Callable[[bytes], Awaitable[None]],
    *,
    modified: datetime,
    level: int = DEFAULT_LEVEL,
) -> ZipEntryInfo:
    """Compress ``chunks`` into a single-entry ZIP named ``name``, emitted through ``write``.

    Memory stays bounded by one input chunk plus ~``WRITE_SIZE`` of output, whatever the total
    size. ``write`` receives every byte of the archive exactly once, in order, in pieces of at
    least ``WRITE_SIZE`` bytes (except the last).

    The sizes are unknown until the stream ends and the sink cannot seek back, so the local
    header defers crc/sizes to a data descriptor (flag bit 3). It always carries a ZIP64 extra
    field, because that is how readers learn the descriptor uses 8-byte sizes, and the sizes
    could turn out to exceed 4 GiB. The stored object is never served as is (see
    :func:`build_layout`), so this always-ZIP64 local header costs nothing at download time.
    """
    entry = _make_entry(name, modified, METHOD_DEFLATED, crc32=0, size=0, compressed_size=0)
    header = _local_header(entry, streaming=True)
    data_offset = len(header)

    # One compressor for the whole file: a single deflate stream keeps matches across chunk
    # boundaries, and wbits=-15 makes it raw deflate as ZIP requires (no zlib/gzip wrapper).
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, _MEM_LEVEL)
    pending = bytearray(header)
    written = 0
    crc = 0
    size = 0
    compressed_size = 0

    async def drain(force: bool) -> None:
        nonlocal written
        if len(pending) >= WRITE_SIZE or (force and pending):
            # Copy out: the sink may keep a reference while we keep refilling the buffer.
            piece = bytes(pending)
            pending.clear()
            await write(piece)
            written += len(piece)

    async for chunk in chunks:
        if not chunk:
            continue
        # Deflate and CRC are the CPU-heavy part (tens of ms per MiB-sized chunk); ISA-L releases
        # the GIL, so a worker thread keeps the event loop serving other requests meanwhile.
        crc, compressed = await asyncio.to_thread(_compress_chunk, compressor, chunk, crc)
        size += len(chunk)
        compressed_size += len(compressed)
        pending += compressed
        await drain(force=False)

    tail = await asyncio.to_thread(compressor.flush)
    compressed_size += len(tail)
    pending += tail

    pending += _DESCRIPTOR64.pack(_DESCRIPTOR_SIG, crc, compressed_size, size)
    entry = _make_entry(
        name, modified, METHOD_DEFLATED, crc32=crc, size=size, compressed_size=compressed_size
    )
    cd_offset = written + len(pending)
    # The local header already announced ZIP64, so the central directory says so too: a reader
    # cross-checking "version needed" between the two would otherwise flag a mismatch.
    pending += _central_directory(
        entry, cd_offset, flags=_FLAG_UTF8 | _FLAG_DATA_DESCRIPTOR, force_zip64_version=True
    )
    await drain(force=True)

    return ZipEntryInfo(
        crc32=crc,
        size=size,
        compressed_size=compressed_size,
        data_offset=data_offset,
        archive_size=written,
        method=METHOD_DEFLATED,
    )


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
    if not 0 <= info.crc32 <= _SENTINEL32:
        raise ValueError("crc32 must be an unsigned 32-bit value")
    if info.data_offset + info.compressed_size > info.archive_size:
        raise ValueError("the entry's data extends past the end of the stored archive")

    entry = _make_entry(
        name,
        modified,
        info.method,
        crc32=info.crc32,
        size=info.size,
        compressed_size=info.compressed_size,
    )
    header = _local_header(entry, streaming=False)
    trailer = _central_directory(
        entry, len(header) + info.compressed_size, flags=_FLAG_UTF8, force_zip64_version=False
    )
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


def _compress_chunk(compressor: isal_zlib.Compress, chunk: bytes, crc: int) -> tuple[int, bytes]:
    # Runs in a worker thread; calls are strictly sequential, so sharing the compressor is safe.
    return isal_zlib.crc32(chunk, crc), compressor.compress(chunk)


def _make_entry(
    name: str, modified: datetime, method: int, *, crc32: int, size: int, compressed_size: int
) -> _Entry:
    encoded = name.encode("utf-8")
    if not encoded or len(encoded) > 0xFFFF or "\x00" in name:
        raise ValueError("the entry name must be 1-65535 UTF-8 bytes without NUL characters")
    # Naive datetimes are taken as UTC: the server has no idea of the downloader's time zone,
    # and UTC is at least the same for everybody.
    utc = modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified.astimezone(UTC)
    dos_time, dos_date = _dos_datetime(utc)
    return _Entry(
        name=encoded,
        dos_time=dos_time,
        dos_date=dos_date,
        extra_time=_timestamp_extra(utc),
        method=method,
        crc32=crc32,
        size=size,
        compressed_size=compressed_size,
    )


def _dos_datetime(utc: datetime) -> tuple[int, int]:
    # MS-DOS timestamps only cover 1980-2107 with 2-second resolution; clamp rather than fail,
    # since the "UT" extra field carries the exact time for tools that read it.
    if utc.year < 1980:
        return 0, (1 << 5) | 1  # 1980-01-01 00:00:00
    if utc.year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31  # 2107-12-31 23:59:58
    dos_time = (utc.hour << 11) | (utc.minute << 5) | (utc.second // 2)
    dos_date = ((utc.year - 1980) << 9) | (utc.month << 5) | utc.day
    return dos_time, dos_date


def _timestamp_extra(utc: datetime) -> bytes:
    # The "UT" field gives unzip & co. the real modification time (DOS time is zone-less and
    # coarse). Its 32-bit value is signed for some readers and unsigned for others, so it is
    # only written when both agree; outside 1970-2038 the DOS time alone has to do.
    seconds = math.floor(utc.timestamp())
    if not 0 <= seconds < 1 << 31:
        return b""
    return struct.pack("<HHBI", _TIMESTAMP_EXTRA_ID, 5, 1, seconds)


def _zip64_extra(*values: int) -> bytes:
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_EXTRA_ID, 8 * len(values), *values)


def _version_needed(method: int) -> int:
    return _VERSION_DEFLATE if method == METHOD_DEFLATED else _VERSION_STORED


def _local_header(entry: _Entry, *, streaming: bool) -> bytes:
    if streaming:
        # APPNOTE 4.5.3: a local ZIP64 extra must hold both sizes, with the 32-bit fields set to
        # the sentinel; the real values (and crc) come in the data descriptor. This is the same
        # shape Info-ZIP `zip` emits when it compresses a pipe.
        flags = _FLAG_UTF8 | _FLAG_DATA_DESCRIPTOR
        crc = 0
        size32 = compressed32 = _SENTINEL32
        zip64 = _zip64_extra(0, 0)
        version = _VERSION_ZIP64
    else:
        flags = _FLAG_UTF8
        crc = entry.crc32
        if entry.size >= ZIP64_LIMIT or entry.compressed_size >= ZIP64_LIMIT:
            size32 = compressed32 = _SENTINEL32
            zip64 = _zip64_extra(entry.size, entry.compressed_size)
            version = _VERSION_ZIP64
        else:
            size32, compressed32 = entry.size, entry.compressed_size
            zip64 = b""
            version = _version_needed(entry.method)
    extra = zip64 + entry.extra_time
    fixed = _LOCAL_HEADER.pack(
        _LOCAL_SIG,
        version,
        flags,
        entry.method,
        entry.dos_time,
        entry.dos_date,
        crc,
        compressed32,
        size32,
        len(entry.name),
        len(extra),
    )
    return fixed + entry.name + extra


def _central_directory(
    entry: _Entry, cd_offset: int, *, flags: int, force_zip64_version: bool
) -> bytes:
    """Central directory record, ZIP64 end records if needed, and the end record.

    The local header always sits at offset 0 (single-entry archives), so the header offset never
    needs ZIP64; the directory's own offset does once the data passes 4 GiB.
    """
    zip64_values: list[int] = []
    size32 = compressed32 = _SENTINEL32
    # APPNOTE 4.5.3: only the fields whose 32-bit slot holds the sentinel appear in the extra,
    # in this fixed order (uncompressed size, then compressed size).
    if entry.size >= ZIP64_LIMIT:
        zip64_values.append(entry.size)
    else:
        size32 = entry.size
    if entry.compressed_size >= ZIP64_LIMIT:
        zip64_values.append(entry.compressed_size)
    else:
        compressed32 = entry.compressed_size
    zip64 = _zip64_extra(*zip64_values) if zip64_values else b""
    extra = zip64 + entry.extra_time
    needs_zip64 = force_zip64_version or bool(zip64_values)
    version = _VERSION_ZIP64 if needs_zip64 else _version_needed(entry.method)
    record = (
        _CENTRAL_HEADER.pack(
            _CENTRAL_SIG,
            _VERSION_MADE_BY,
            version,
            flags,
            entry.method,
            entry.dos_time,
            entry.dos_date,
            entry.crc32,
            compressed32,
            size32,
            len(entry.name),
            len(extra),
            0,  # comment length
            0,  # disk number start
            0,  # internal attributes
            _EXTERNAL_ATTRS,
            0,  # local header offset
        )
        + entry.name
        + extra
    )

    end = b""
    cd_offset32 = cd_offset
    if cd_offset >= ZIP64_LIMIT:
        cd_offset32 = _SENTINEL32
        eocd64_offset = cd_offset + len(record)
        end = _EOCD64.pack(
            _EOCD64_SIG,
            _EOCD64.size - 12,  # size of the record after this field
            _VERSION_MADE_BY,
            _VERSION_ZIP64,
            0,  # this disk
            0,  # disk holding the central directory
            1,  # entries on this disk
            1,  # entries in total
            len(record),
            cd_offset,
        ) + _EOCD64_LOCATOR.pack(_EOCD64_LOCATOR_SIG, 0, eocd64_offset, 1)
    end += _EOCD.pack(_EOCD_SIG, 0, 0, 1, 1, len(record), cd_offset32, 0)
    return record + end
