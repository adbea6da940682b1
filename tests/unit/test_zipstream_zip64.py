"""ZIP64: with the 32-bit limit lowered, and for real past 4 GiB."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.zips import (
    LATER,
    MIB,
    WHEN,
    Sink,
    Store,
    assert_classic_end_record,
    assert_unzip_accepts,
    assert_zip64_end_records,
    collect,
    compress,
    extra_ids,
    only_entry,
    random_data,
    text_data,
)

from instashare import zipstream
from instashare.zipstream import (
    build_layout,
    write_zip,
)


async def test_zip64_paths_with_lowered_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Pretend 32-bit fields top out at 1000: every size and the central directory offset of
    # these ~100 KiB archives then need ZIP64, exercising those branches for real.
    monkeypatch.setattr(zipstream.records, "ZIP64_LIMIT", 1000)
    data = text_data(300_000) + random_data(50_000)
    info, sink = await compress(data, chunk_size=64 * 1024)

    zf, entry = only_entry(sink.data)
    assert zf.read("doc.txt") == data
    assert extra_ids(entry.extra)[0] == 0x0001
    assert entry.extract_version == 45
    assert_zip64_end_records(sink.data)
    assert_unzip_accepts(sink.data, tmp_path)

    layout = build_layout(info, "big one.txt", modified=LATER)
    archive = await collect(layout, Store(sink.data))
    zf, entry = only_entry(archive)
    assert zf.read("big one.txt") == data
    assert entry.file_size == len(data)
    assert entry.compress_size == info.compressed_size
    assert extra_ids(entry.extra)[0] == 0x0001
    assert entry.extract_version == 45
    # Local header: both 32-bit sizes hold the sentinel, the real ones are in its ZIP64 extra.
    local = struct.unpack("<IHHHHHIIIHH", archive[:30])
    assert local[7:9] == (0xFFFFFFFF, 0xFFFFFFFF)
    name_end = 30 + len(b"big one.txt")
    assert struct.unpack("<HHQQ", archive[name_end : name_end + 20]) == (
        1,
        16,
        len(data),
        info.compressed_size,
    )
    # Central directory offset only fits the ZIP64 end record.
    assert_zip64_end_records(archive)
    assert_unzip_accepts(archive, tmp_path)


async def test_zip64_for_real_over_4gib() -> None:
    # 4 GiB + 1 MiB of zeros and a short tail, at level 1 where ISA-L flies through zeros.
    # Nothing large is ever held: the stored archive is ~0.5 MB.
    block = bytes(8 * MIB)
    tail = b"the end\n"
    total = (1 << 32) + MIB + len(tail)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1 << 9):
            yield block
        yield block[:MIB]
        yield tail

    sink = Sink()
    info = await write_zip(chunks(), "zeros.bin", sink, modified=WHEN, level=1)
    assert info.size == total
    assert info.size > 0xFFFFFFFF
    assert sink.data[info.data_offset + info.compressed_size :][:24] == struct.pack(
        "<IIQQ", 0x08074B50, info.crc32, info.compressed_size, total
    )
    stored = zipfile.ZipFile(io.BytesIO(sink.data)).getinfo("zeros.bin")
    assert stored.file_size == total
    assert stored.CRC == info.crc32

    layout = build_layout(info, "renamed zeros.bin", modified=LATER)
    archive = await collect(layout, Store(sink.data, piece=MIB))
    assert len(archive) == layout.size
    assert struct.unpack("<II", archive[18:26]) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert_classic_end_record(archive)  # the directory offset itself is small

    zf = zipfile.ZipFile(io.BytesIO(archive))
    entry = zf.getinfo("renamed zeros.bin")
    assert entry.file_size == total
    assert entry.CRC == info.crc32
    # Reading to EOF makes zipfile check the CRC (with its own zlib) over all 4 GiB.
    read = 0
    last = b""
    with zf.open(entry) as f:
        while piece := f.read(16 * MIB):
            read += len(piece)
            last = piece
    assert read == total
    assert last.endswith(tail)
