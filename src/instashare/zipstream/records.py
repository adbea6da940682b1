"""The binary records of a ZIP file (APPNOTE 6.3.x): local headers, central directory, end records.

Pure functions of their arguments, so an archive described twice is the same bytes twice: what
makes ETags and resumed ``Range`` requests sound.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

# Any size or offset >= this no longer fits a classic 32-bit ZIP field: 0xFFFFFFFF itself is the
# "look in the ZIP64 record" sentinel, so it cannot be stored as a literal value. Read at call
# time (never captured in defaults) so tests can lower it to exercise the ZIP64 paths cheaply.
ZIP64_LIMIT = 0xFFFFFFFF
# The same for the 16-bit entry counts of the end record: 0xFFFF is the sentinel.
ZIP64_COUNT_LIMIT = 0xFFFF

METHOD_STORED = 0
METHOD_DEFLATED = 8

SENTINEL32 = 0xFFFFFFFF
_SENTINEL16 = 0xFFFF
_LOCAL_SIG = 0x04034B50
_CENTRAL_SIG = 0x02014B50
DESCRIPTOR_SIG = 0x08074B50
_EOCD64_SIG = 0x06064B50
_EOCD64_LOCATOR_SIG = 0x07064B50
_EOCD_SIG = 0x06054B50

FLAG_DATA_DESCRIPTOR = 1 << 3  # crc/sizes follow the data instead of preceding it
FLAG_UTF8 = 1 << 11  # the name is UTF-8, not the legacy IBM437 code page

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
DESCRIPTOR64 = struct.Struct("<IIQQ")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_EOCD64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")


@dataclass(frozen=True, slots=True)
class Entry:
    """Everything the record builders need about one entry, already validated and encoded."""

    name: bytes
    dos_time: int
    dos_date: int
    extra_time: bytes  # "UT" extra field, or b"" when the time does not fit it
    method: int
    crc32: int
    size: int
    compressed_size: int


def make_entry(
    name: str, modified: datetime, method: int, *, crc32: int, size: int, compressed_size: int
) -> Entry:
    encoded = name.encode("utf-8")
    if not encoded or len(encoded) > 0xFFFF or "\x00" in name:
        raise ValueError("the entry name must be 1-65535 UTF-8 bytes without NUL characters")
    # Naive datetimes are taken as UTC: the server has no idea of the downloader's time zone,
    # and UTC is at least the same for everybody.
    utc = modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified.astimezone(UTC)
    dos_time, dos_date = _dos_datetime(utc)
    return Entry(
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


def local_header(entry: Entry, *, streaming: bool) -> bytes:
    """The local file header; ``streaming`` defers crc and sizes to a data descriptor."""
    if streaming:
        # APPNOTE 4.5.3: a local ZIP64 extra must hold both sizes, with the 32-bit fields set to
        # the sentinel; the real values (and crc) come in the data descriptor. This is the same
        # shape Info-ZIP `zip` emits when it compresses a pipe.
        flags = FLAG_UTF8 | FLAG_DATA_DESCRIPTOR
        crc = 0
        size32 = compressed32 = SENTINEL32
        zip64 = _zip64_extra(0, 0)
        version = _VERSION_ZIP64
    else:
        flags = FLAG_UTF8
        crc = entry.crc32
        if entry.size >= ZIP64_LIMIT or entry.compressed_size >= ZIP64_LIMIT:
            size32 = compressed32 = SENTINEL32
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


def central_record(
    entry: Entry, header_offset: int, *, flags: int, force_zip64_version: bool
) -> bytes:
    """One entry's central directory record, its local header being at ``header_offset``."""
    zip64_values: list[int] = []
    size32 = compressed32 = offset32 = SENTINEL32
    # APPNOTE 4.5.3: only the fields whose 32-bit slot holds the sentinel appear in the extra,
    # in this fixed order (uncompressed size, compressed size, local header offset).
    if entry.size >= ZIP64_LIMIT:
        zip64_values.append(entry.size)
    else:
        size32 = entry.size
    if entry.compressed_size >= ZIP64_LIMIT:
        zip64_values.append(entry.compressed_size)
    else:
        compressed32 = entry.compressed_size
    if header_offset >= ZIP64_LIMIT:
        zip64_values.append(header_offset)
    else:
        offset32 = header_offset
    zip64 = _zip64_extra(*zip64_values) if zip64_values else b""
    extra = zip64 + entry.extra_time
    needs_zip64 = force_zip64_version or bool(zip64_values)
    version = _VERSION_ZIP64 if needs_zip64 else _version_needed(entry.method)
    return (
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
            offset32,
        )
        + entry.name
        + extra
    )


def end_records(count: int, directory_size: int, directory_offset: int) -> bytes:
    """The end of central directory record, preceded by the ZIP64 ones when a value overflows.

    Only the fields that do not fit hold the sentinel in the classic record, so an archive that
    needs ZIP64 for its directory offset alone still tells old readers its true entry count.
    """
    overflows = (
        count >= ZIP64_COUNT_LIMIT
        or directory_size >= ZIP64_LIMIT
        or directory_offset >= ZIP64_LIMIT
    )
    end = b""
    if overflows:
        eocd64_offset = directory_offset + directory_size
        end = _EOCD64.pack(
            _EOCD64_SIG,
            _EOCD64.size - 12,  # size of the record after this field
            _VERSION_MADE_BY,
            _VERSION_ZIP64,
            0,  # this disk
            0,  # disk holding the central directory
            count,  # entries on this disk
            count,  # entries in total
            directory_size,
            directory_offset,
        ) + _EOCD64_LOCATOR.pack(_EOCD64_LOCATOR_SIG, 0, eocd64_offset, 1)
    count16 = _SENTINEL16 if count >= ZIP64_COUNT_LIMIT else count
    size32 = SENTINEL32 if directory_size >= ZIP64_LIMIT else directory_size
    offset32 = SENTINEL32 if directory_offset >= ZIP64_LIMIT else directory_offset
    return end + _EOCD.pack(_EOCD_SIG, 0, 0, count16, count16, size32, offset32, 0)
