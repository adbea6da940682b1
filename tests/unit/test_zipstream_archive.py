"""Archives of many entries, each read from its own stored object (a share's ZIP)."""

from __future__ import annotations

import asyncio
import io
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from instashare import zipstream
from instashare.zipstream import (
    READ_AHEAD_MAX_BYTES,
    ArchiveEntry,
    ArchiveLayout,
    StoredDataError,
    StoredRange,
    ZipEntryInfo,
    build_archive,
    build_layout,
    iter_layout,
    write_zip,
)

WHEN = datetime(2025, 3, 4, 5, 6, 8, tzinfo=UTC)
UNZIP = shutil.which("unzip")


class Objects:
    """Fake object storage holding several objects; logs reads and how many overlap."""

    def __init__(self, blobs: dict[str, bytes], piece: int = 8192, delay: float = 0) -> None:
        self.blobs = blobs
        self.piece = piece
        self.delay = delay
        self.calls: list[tuple[str, int, int]] = []
        self.reading = 0
        self.most_at_once = 0
        self.cancelled = 0

    async def read_range(self, source: str, offset: int, length: int) -> AsyncIterator[bytes]:
        self.calls.append((source, offset, length))
        blob = self.blobs[source]
        assert 0 <= offset
        assert offset + length <= len(blob)
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            for i in range(offset, offset + length, self.piece):
                yield blob[i : min(i + self.piece, offset + length)]
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.reading -= 1


async def collect(
    layout: ArchiveLayout, objects: Objects, *args: int, read_ahead: int = 0
) -> bytes:
    pieces = iter_layout(layout, objects.read_range, *args, read_ahead=read_ahead)
    return b"".join([piece async for piece in pieces])


async def stored(data: bytes, name: str = "x") -> tuple[ZipEntryInfo, bytes]:
    """``data`` compressed as an upload is, and the stored archive's bytes."""
    out = bytearray()

    async def sink(piece: bytes) -> None:
        out.extend(piece)

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    info = await write_zip(chunks(), name, sink, modified=WHEN)
    return info, bytes(out)


def assert_unzip_accepts(archive: bytes, tmp_path: Path) -> None:
    if UNZIP is None:  # Info-ZIP is an extra cross-check, not a hard requirement
        return
    path = tmp_path / "check.zip"
    path.write_bytes(archive)
    result = subprocess.run([UNZIP, "-t", str(path)], capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


async def many(count: int, seed: int = 3) -> tuple[list[ArchiveEntry], dict[str, bytes], dict]:
    """``count`` stored documents of assorted sizes: entries, stored objects, contents by name."""
    rng = random.Random(seed)
    entries, blobs, contents = [], {}, {}
    for i in range(count):
        size = rng.choice([0, 1, 100, 5000, 70_000])
        data = rng.randbytes(size // 2) + b"text " * (size // 10)
        info, blob = await stored(data)
        name = f"file {i:03d} é.txt"
        entries.append(ArchiveEntry(info, name, WHEN, source=f"archives/{i}"))
        blobs[f"archives/{i}"] = blob
        contents[name] = data
    return entries, blobs, contents


async def test_every_entry_unzips_to_its_own_bytes(tmp_path: Path) -> None:
    entries, blobs, contents = await many(12)
    raw = b"uncompressed, stored as is"
    blobs["raw"] = b"junk" + raw
    stored_info = ZipEntryInfo(zlib.crc32(raw), len(raw), len(raw), 4, len(raw) + 4, 0)
    entries.append(ArchiveEntry(stored_info, "raw.bin", WHEN, source="raw"))
    contents["raw.bin"] = raw
    objects = Objects(blobs)

    layout = build_archive(entries)
    archive = await collect(layout, objects)

    assert len(archive) == layout.size
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [entry.name for entry in entries]
        for name, data in contents.items():
            assert zf.read(name) == data
            info = zf.getinfo(name)
            assert info.date_time == (2025, 3, 4, 5, 6, 8)
            assert info.flag_bits & 0x08 == 0  # sizes up front, no data descriptor
    # Each stored object is read once, in order, for exactly its deflate data.
    expected = [
        (entry.source, entry.info.data_offset, entry.info.compressed_size)
        for entry in entries
        if entry.info.compressed_size
    ]
    assert objects.calls == expected
    assert_unzip_accepts(archive, tmp_path)


async def test_one_entry_is_the_single_document_layout() -> None:
    info, _ = await stored(b"same as always\n" * 20)
    one = build_archive([ArchiveEntry(info, "a.txt", WHEN)])
    assert one == build_layout(info, "a.txt", modified=WHEN)


async def test_no_entries_is_an_empty_zip() -> None:
    layout = build_archive([])
    archive = await collect(layout, Objects({}))
    assert layout.size == len(archive) == 22
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist() == []


@pytest.mark.parametrize("read_ahead", [0, 3])
async def test_any_range_is_the_same_slice_of_the_full_archive(read_ahead: int) -> None:
    entries, blobs, _ = await many(8, seed=5)
    layout = build_archive(entries)
    full = await collect(layout, Objects(blobs))
    boundaries, position = [], 0
    for segment in layout.segments:
        position += len(segment) if isinstance(segment, bytes) else segment.length
        boundaries += [position - 1, position, position + 1]
    edges = sorted({0, layout.size, *(b for b in boundaries if 0 <= b <= layout.size)})
    rng = random.Random(11)
    cases = [(a, b) for a in edges[::3] for b in edges[::3] if a <= b]
    cases += [
        tuple(sorted((rng.randrange(layout.size), rng.randrange(layout.size)))) for _ in range(150)
    ]
    for start, end in cases:
        objects = Objects(blobs, piece=rng.choice([7, 4096, 65536]))
        assert await collect(layout, objects, start, end, read_ahead=read_ahead) == full[start:end]
        # Only the stored bytes inside the range are read.
        assert sum(length for _, _, length in objects.calls) <= end - start


async def test_read_ahead_overlaps_small_reads_and_keeps_the_order() -> None:
    entries, blobs, _ = await many(30, seed=9)
    layout = build_archive(entries)
    sequential = Objects(blobs, delay=0.002)
    ahead = Objects(blobs, delay=0.002)

    expected = await collect(layout, sequential)
    assert await collect(layout, ahead, read_ahead=4) == expected
    assert sequential.most_at_once == 1
    assert ahead.most_at_once == 8  # two batches of four
    assert ahead.calls == sequential.calls  # every range asked for once, in archive order


async def test_read_ahead_streams_large_ranges_in_their_turn() -> None:
    big = random.Random(1).randbytes(READ_AHEAD_MAX_BYTES * 3)
    small_entries, blobs, _ = await many(6, seed=2)
    big_info, big_blob = await stored(big)
    blobs["big"] = big_blob
    entries = [*small_entries[:3], ArchiveEntry(big_info, "big", WHEN, "big"), *small_entries[3:]]
    objects = Objects(blobs, delay=0.001)
    layout = build_archive(entries)
    archive = await collect(layout, objects, read_ahead=8)
    assert zipfile.ZipFile(io.BytesIO(archive)).read("big") == big
    # Nothing was read twice.
    assert objects.most_at_once <= 17  # two batches of eight, and the large one
    assert len(objects.calls) == len({call for call in objects.calls})


async def test_a_consumer_that_stops_cancels_the_reads_ahead() -> None:
    entries, blobs, _ = await many(20, seed=4)
    objects = Objects(blobs, delay=0.05)
    pieces = iter_layout(build_archive(entries), objects.read_range, read_ahead=6)
    first = await anext(pieces)
    assert first.startswith(b"PK\x03\x04")
    await asyncio.sleep(0.01)  # the reads ahead are under way
    assert objects.reading == 12  # two batches of six
    await pieces.aclose()
    assert objects.reading == 0
    assert objects.cancelled >= 1


async def test_read_ahead_reports_a_short_object() -> None:
    entries, blobs, _ = await many(5, seed=6)
    victim = next(e for e in entries if e.info.compressed_size > 10)
    blobs[victim.source] = blobs[victim.source][: victim.info.data_offset + 5]

    async def short(source: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield blobs[source][offset : offset + length]

    with pytest.raises(StoredDataError, match="returned"):
        _ = [p async for p in iter_layout(build_archive(entries), short, read_ahead=3)]


async def test_a_batch_reader_gets_the_small_ranges_in_order() -> None:
    big = random.Random(1).randbytes(READ_AHEAD_MAX_BYTES + 1)
    entries, blobs, contents = await many(13, seed=12)
    big_info, blobs["big"] = await stored(big)
    entries.insert(5, ArchiveEntry(big_info, "big", WHEN, "big"))
    contents["big"] = big
    objects = Objects(blobs)
    batches: list[list[StoredRange]] = []

    async def read_batch(ranges):  # type: ignore[no-untyped-def]
        batches.append(list(ranges))
        return [blobs[r.source][r.offset : r.offset + r.length] for r in ranges]

    layout = build_archive(entries)
    pieces = iter_layout(layout, objects.read_range, read_ahead=3, read_batch=read_batch)
    archive = b"".join([piece async for piece in pieces])
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert {name: zf.read(name) for name in zf.namelist()} == contents
    assert all(1 <= len(batch) <= 3 for batch in batches)
    batched = [r for batch in batches for r in batch]
    assert [r.source for r in batched] == [
        e.source for e in entries if e.source != "big" and e.info.compressed_size
    ]
    # The large range is streamed through read_range, the only call it gets.
    assert [call[0] for call in objects.calls] == ["big"]

    async def short_batch(ranges):  # type: ignore[no-untyped-def]
        return [b"x" for _ in ranges]

    with pytest.raises(StoredDataError, match="read_batch returned"):
        _ = [
            p
            async for p in iter_layout(
                layout, objects.read_range, read_ahead=3, read_batch=short_batch
            )
        ]


async def test_zip64_header_offsets_with_lowered_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(zipstream.records, "ZIP64_LIMIT", 3000)
    entries, blobs, contents = await many(10, seed=8)
    archive = await collect(build_archive(entries), Objects(blobs))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        late = [info for info in zf.infolist() if info.header_offset >= 3000]
        assert late  # whose offsets only the ZIP64 extra holds
        for info in zf.infolist():
            assert zf.read(info) == contents[info.filename]
    assert_unzip_accepts(archive, tmp_path)


async def test_zip64_entry_count_with_lowered_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipstream.records, "ZIP64_COUNT_LIMIT", 4)
    entries, blobs, contents = await many(6, seed=10)
    archive = await collect(build_archive(entries), Objects(blobs))
    counts = struct.unpack("<HH", archive[-22 + 8 : -22 + 12])
    assert counts == (0xFFFF, 0xFFFF)
    assert archive[-42:-38] == b"PK\x06\x07"  # the ZIP64 locator precedes the end record
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert len(zf.infolist()) == 6
        assert {n: zf.read(n) for n in zf.namelist()} == contents


async def test_more_than_65535_entries_for_real(tmp_path: Path) -> None:
    empty = ZipEntryInfo(0, 0, 0, 0, 0, zipstream.METHOD_STORED)
    count = 65_537
    entries = [ArchiveEntry(empty, f"{i:05x}", WHEN) for i in range(count)]
    layout = build_archive(entries)
    archive = await collect(layout, Objects({}))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        names = zf.namelist()
    assert len(names) == count
    assert names[-1] == f"{count - 1:05x}"
    assert_unzip_accepts(archive, tmp_path)


class LayoutFile(io.RawIOBase):
    """A seekable file over a layout, read through iter_layout: nothing big is held."""

    def __init__(self, layout: ArchiveLayout, objects: Objects) -> None:
        self.layout, self.objects, self.position = layout, objects, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.layout.size}[whence]
        self.position = base + offset
        return self.position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        end = min(self.layout.size, self.position + len(buffer))
        if self.position >= end:
            return 0
        data = asyncio.run(collect(self.layout, self.objects, self.position, end))
        buffer[: len(data)] = data
        self.position = end
        return len(data)


class Zeros:
    """5 GiB of zeros to slice, never held."""

    def __len__(self) -> int:
        return 5 << 30

    def __getitem__(self, index: slice) -> bytes:
        return bytes(index.stop - index.start)


def test_entries_past_4_gib_for_real() -> None:
    # The first entry's (never read) data is 4 GiB + 1 KiB of stored zeros, so the second entry's
    # local header and the central directory both sit past 4 GiB: real ZIP64 offsets.
    huge = (4 << 30) + 1024
    first = ZipEntryInfo(0, huge, huge, 0, huge, zipstream.METHOD_STORED)
    tail = b"after four gibibytes\n"
    second = ZipEntryInfo(zlib.crc32(tail), len(tail), len(tail), 7, 7 + len(tail), 0)
    objects = Objects({"zeros": Zeros(), "tail": b"prefix!" + tail})  # type: ignore[dict-item]
    layout = build_archive(
        [
            ArchiveEntry(first, "zeros.bin", WHEN, "zeros"),
            ArchiveEntry(second, "tail.txt", WHEN, "tail"),
        ]
    )
    assert layout.size > 1 << 32
    with zipfile.ZipFile(io.BufferedReader(LayoutFile(layout, objects))) as zf:
        zeros, after = zf.infolist()
        assert zeros.file_size == huge
        assert after.header_offset > 1 << 32
        assert zf.read("tail.txt") == tail
    assert all(call[0] != "zeros" for call in objects.calls)  # opening the ZIP read none of them


def test_stored_ranges_name_their_object() -> None:
    info = ZipEntryInfo(0, 3, 3, 0, 3, 0)
    layout = build_archive(
        [ArchiveEntry(info, "a", WHEN, "k1"), ArchiveEntry(info, "b", WHEN, "k2")]
    )
    ranges = [s for s in layout.segments if isinstance(s, StoredRange)]
    assert ranges == [StoredRange(0, 3, "k1"), StoredRange(0, 3, "k2")]
