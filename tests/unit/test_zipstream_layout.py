"""`build_layout` and `iter_layout`: a stored archive served renamed and redated, in ranges."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tests.support.zips import (
    LATER,
    MIB,
    WHEN,
    Store,
    assert_classic_end_record,
    assert_unzip_accepts,
    collect,
    compress,
    extra_ids,
    only_entry,
    random_data,
    text_data,
)

from instashare import zipstream
from instashare.zipstream import (
    StoredDataError,
    StoredRange,
    ZipEntryInfo,
    build_layout,
    iter_layout,
)


async def test_layout_serves_renamed_archive_without_recompressing(tmp_path: Path) -> None:
    data = text_data(2 * MIB) + random_data(MIB)
    info, sink = await compress(data, name="original.log")
    store = Store(sink.data)

    layout = build_layout(info, "renamed report.log", modified=LATER)
    archive = await collect(layout, store)

    assert len(archive) == layout.size
    # The deflate bytes are referenced, never embedded, and read exactly once.
    assert layout.segments[1] == StoredRange(info.data_offset, info.compressed_size)
    assert sum(len(s) for s in layout.segments if isinstance(s, bytes)) < 200
    assert store.calls == [(info.data_offset, info.compressed_size)]

    zf, entry = only_entry(archive)
    assert zf.namelist() == ["renamed report.log"]
    assert zf.read("renamed report.log") == data
    assert entry.date_time == (2025, 1, 2, 3, 4, 6)
    assert entry.compress_size == info.compressed_size
    # A served archive is an ordinary one: sizes up front, no descriptor, no ZIP64.
    assert entry.flag_bits & 0x08 == 0
    assert entry.extract_version == 20
    assert_classic_end_record(archive)
    assert_unzip_accepts(archive, tmp_path)


async def test_layout_is_deterministic() -> None:
    info, _ = await compress(b"same bytes\n" * 50)
    first = build_layout(info, "a.txt", modified=LATER)
    assert build_layout(info, "a.txt", modified=LATER) == first
    assert build_layout(info, "b.txt", modified=LATER) != first
    assert build_layout(info, "a.txt", modified=LATER + timedelta(seconds=1)) != first


async def test_iter_layout_sub_ranges_match_full_archive() -> None:
    data = text_data(MIB) + random_data(200_000)
    info, sink = await compress(data)
    blob = sink.data
    layout = build_layout(info, "ranges.txt", modified=LATER)
    full = await collect(layout, Store(blob))
    header_len = len(layout.segments[0])  # type: ignore[arg-type]
    data_end = header_len + info.compressed_size

    rng = random.Random(7)
    edges = [0, 1, header_len - 1, header_len, header_len + 1, data_end - 1, data_end]
    edges += [data_end + 1, layout.size - 1, layout.size]
    cases = [(a, b) for a in edges for b in edges if a <= b]
    for _ in range(200):
        a, b = sorted((rng.randrange(layout.size + 1), rng.randrange(layout.size + 1)))
        cases.append((a, b))

    for start, end in cases:
        # Byte-at-a-time pieces only for short ranges, to keep the test quick.
        store = Store(blob, piece=1 if end - start < 5000 else rng.choice([1000, 65536]))
        assert await collect(layout, store, start, end) == full[start:end], (start, end)
        # read_range is asked for precisely the overlap with the deflate data, or not at all.
        lo, hi = max(start, header_len), min(end, data_end)
        expected = [(info.data_offset + lo - header_len, hi - lo)] if lo < hi else []
        assert store.calls == expected, (start, end)

    # `end=None` means "to the end", the usual open-ended `Range: bytes=N-`.
    store = Store(blob)
    tail = [p async for p in iter_layout(layout, store.read_range, data_end - 10)]
    assert b"".join(tail) == full[data_end - 10 :]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (0, 10**9), (10**9, None)])
async def test_iter_layout_rejects_bad_ranges(start: int, end: int | None) -> None:
    info, sink = await compress(b"abc")
    layout = build_layout(info, "a", modified=WHEN)
    with pytest.raises(ValueError, match="outside"):
        await collect(layout, Store(sink.data), start, end)


async def test_iter_layout_detects_wrong_length_reads() -> None:
    info, sink = await compress(text_data(100_000))
    layout = build_layout(info, "a", modified=WHEN)

    async def short(_: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield sink.data[offset : offset + length - 1]

    async def long(_: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield sink.data[offset : offset + length]
        yield b"!"

    async def with_empty_pieces(_: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield b""
        yield sink.data[offset : offset + length]
        yield b""

    with pytest.raises(StoredDataError, match="returned"):
        _ = [p async for p in iter_layout(layout, short)]
    with pytest.raises(StoredDataError, match="over"):
        _ = [p async for p in iter_layout(layout, long)]
    pieces = [p async for p in iter_layout(layout, with_empty_pieces)]
    assert all(pieces)
    assert zipfile.ZipFile(io.BytesIO(b"".join(pieces))).read("a") == text_data(100_000)


async def test_layout_for_stored_method(tmp_path: Path) -> None:
    # build_layout also serves uncompressed (method 0) data, e.g. from another producer.
    payload = random_data(5000)
    blob = b"junk-before" + payload + b"junk-after"
    info = ZipEntryInfo(
        crc32=zlib.crc32(payload),
        size=len(payload),
        compressed_size=len(payload),
        data_offset=11,
        archive_size=len(blob),
        method=zipstream.METHOD_STORED,
    )
    archive = await collect(build_layout(info, "raw.bin", modified=WHEN), Store(blob))
    zf, entry = only_entry(archive)
    assert entry.compress_type == zipfile.ZIP_STORED
    assert entry.extract_version == 10
    assert zf.read("raw.bin") == payload
    assert_unzip_accepts(archive, tmp_path)

    empty = ZipEntryInfo(0, 0, 0, 0, 0, zipstream.METHOD_STORED)
    layout = build_layout(empty, "empty", modified=WHEN)
    assert not any(isinstance(s, StoredRange) for s in layout.segments)
    store = Store(b"")
    zf, _ = only_entry(await collect(layout, store))
    assert zf.read("empty") == b""
    assert store.calls == []


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (ZipEntryInfo(0, 1, 1, 0, 1, 12), "method"),
        (ZipEntryInfo(0, 2, 1, 0, 1, 0), "stored"),
        (ZipEntryInfo(0, -1, 1, 0, 1, 8), "non-negative"),
        (ZipEntryInfo(0, 1, 1, -1, 1, 8), "non-negative"),
        (ZipEntryInfo(1 << 32, 1, 1, 0, 1, 8), "crc32"),
        (ZipEntryInfo(0, 1, 10, 5, 14, 8), "past the end"),
    ],
)
def test_build_layout_rejects_inconsistent_info(info: ZipEntryInfo, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_layout(info, "a", modified=WHEN)


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modified", "date_time", "has_ut"),
    [
        (WHEN, (2024, 5, 6, 7, 8, 10), True),
        # Naive means UTC; other zones are converted to UTC.
        (datetime(2024, 5, 6, 7, 8, 11), (2024, 5, 6, 7, 8, 10), True),
        (datetime(2024, 5, 6, 9, 8, 10, tzinfo=timezone(timedelta(hours=2))), None, True),
        # Outside the DOS range the DOS fields clamp; UT is kept while it fits 31 bits.
        (datetime(1975, 1, 1, tzinfo=UTC), (1980, 1, 1, 0, 0, 0), True),
        (datetime(2200, 1, 1, tzinfo=UTC), (2107, 12, 31, 23, 59, 58), False),
        (datetime(1960, 1, 1, tzinfo=UTC), (1980, 1, 1, 0, 0, 0), False),
    ],
)
async def test_timestamps(
    modified: datetime, date_time: tuple[int, ...] | None, has_ut: bool
) -> None:
    info, sink = await compress(b"t")
    archive = await collect(build_layout(info, "t", modified=modified), Store(sink.data))
    _, entry = only_entry(archive)
    assert entry.date_time == (date_time or (2024, 5, 6, 7, 8, 10))
    ids = extra_ids(entry.extra)
    assert (0x5455 in ids) is has_ut
    if has_ut:
        index = entry.extra.index(b"UT")
        (seconds,) = struct.unpack("<I", entry.extra[index + 5 : index + 9])
        utc = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
        assert seconds == int(utc.timestamp())
