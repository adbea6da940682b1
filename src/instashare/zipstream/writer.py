"""Compressing a stream into a single-entry ZIP, once, as an upload arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from isal import isal_zlib

from instashare.zipstream.records import (
    DESCRIPTOR64,
    DESCRIPTOR_SIG,
    FLAG_DATA_DESCRIPTOR,
    FLAG_UTF8,
    METHOD_DEFLATED,
    central_record,
    end_records,
    local_header,
    make_entry,
)

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


@dataclass(frozen=True, slots=True)
class ZipEntryInfo:
    """What has to be remembered about a stored archive to serve it later under any name."""

    crc32: int
    size: int  # uncompressed bytes
    compressed_size: int  # bytes of the raw deflate stream
    data_offset: int  # offset of the deflate data inside the stored archive
    archive_size: int  # total bytes of the stored archive
    method: int  # METHOD_DEFLATED (write_zip never stores), METHOD_STORED accepted by build_layout


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
    entry = make_entry(name, modified, METHOD_DEFLATED, crc32=0, size=0, compressed_size=0)
    header = local_header(entry, streaming=True)
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

    pending += DESCRIPTOR64.pack(DESCRIPTOR_SIG, crc, compressed_size, size)
    entry = make_entry(
        name, modified, METHOD_DEFLATED, crc32=crc, size=size, compressed_size=compressed_size
    )
    cd_offset = written + len(pending)
    # The local header already announced ZIP64, so the central directory says so too: a reader
    # cross-checking "version needed" between the two would otherwise flag a mismatch.
    record = central_record(
        entry, 0, flags=FLAG_UTF8 | FLAG_DATA_DESCRIPTOR, force_zip64_version=True
    )
    pending += record + end_records(1, len(record), cd_offset)
    await drain(force=True)

    return ZipEntryInfo(
        crc32=crc,
        size=size,
        compressed_size=compressed_size,
        data_offset=data_offset,
        archive_size=written,
        method=METHOD_DEFLATED,
    )


def _compress_chunk(compressor: isal_zlib.Compress, chunk: bytes, crc: int) -> tuple[int, bytes]:
    # Runs in a worker thread; calls are strictly sequential, so sharing the compressor is safe.
    return isal_zlib.crc32(chunk, crc), compressor.compress(chunk)
