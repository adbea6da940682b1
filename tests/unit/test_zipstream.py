from __future__ import annotations

import hashlib
import io
import random
import shutil
import struct
import subprocess
import threading
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from instashare import zipstream
from instashare.zipstream import (
    ArchiveLayout,
    StoredDataError,
    StoredRange,
    ZipEntryInfo,
    build_layout,
    iter_layout,
    write_zip,
)

MIB = 1 << 20
WHEN = datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)
LATER = datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC)
UNZIP = shutil.which("unzip")


def text_data(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "upload", "share", "file", "zip", "user", "ok"]
    lines: list[str] = []
    total = 0
    while total < size:
        line = f"{rng.randint(0, 99999):05d} " + " ".join(rng.choices(words, k=8)) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def random_data(size: int, seed: int = 2) -> bytes:
    return random.Random(seed).randbytes(size)


async def aiter_chunks(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk_size):
        yield data[i : i + chunk_size]


async def aiter_list(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class Sink:
    """Collects what write_zip emits, remembering every piece it was handed."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pieces: list[int] = []

    async def __call__(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.pieces.append(len(data))
        self.buffer += data

    @property
    def data(self) -> bytes:
        return bytes(self.buffer)


class Store:
    """Fake object storage: serves ranges of a stored blob, in small pieces, logging requests."""

    def __init__(self, blob: bytes, piece: int = 4096) -> None:
        self.blob = blob
        self.piece = piece
        self.calls: list[tuple[int, int]] = []

    async def read_range(self, source: str, offset: int, length: int) -> AsyncIterator[bytes]:
        assert source == ""  # a single-object layout names no object
        self.calls.append((offset, length))
        assert 0 <= offset
        assert offset + length <= len(self.blob)
        for i in range(offset, offset + length, self.piece):
            yield self.blob[i : min(i + self.piece, offset + length)]


async def collect(
    layout: ArchiveLayout, store: Store, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([piece async for piece in iter_layout(layout, store.read_range, start, end)])


async def compress(data: bytes, name: str = "doc.txt", chunk_size: int = MIB, **kw: int):
    sink = Sink()
    info = await write_zip(aiter_chunks(data, chunk_size), name, sink, modified=WHEN, **kw)
    return info, sink


def assert_unzip_accepts(archive: bytes, tmp_path: Path) -> None:
    if UNZIP is None:  # Info-ZIP is an extra cross-check, not a hard requirement
        return
    path = tmp_path / "check.zip"
    path.write_bytes(archive)
    result = subprocess.run([UNZIP, "-t", str(path)], capture_output=True, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert b"No errors detected" in output


def only_entry(archive: bytes) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    zf = zipfile.ZipFile(io.BytesIO(archive))
    assert zf.testzip() is None
    (entry,) = zf.infolist()
    return zf, entry


def assert_zip64_end_records(archive: bytes) -> None:
    """ZIP64 EOCD + locator directly before the EOCD, whose directory offset is the sentinel."""
    eocd = struct.unpack("<IHHHHIIH", archive[-22:])
    assert eocd[0] == 0x06054B50
    assert eocd[6] == 0xFFFFFFFF
    sig, disk, eocd64_offset, disks = struct.unpack("<IIQI", archive[-42:-22])
    assert (sig, disk, disks) == (0x07064B50, 0, 1)
    assert eocd64_offset == len(archive) - 42 - 56
    eocd64 = struct.unpack("<IQHHIIQQQQ", archive[eocd64_offset : eocd64_offset + 56])
    assert eocd64[0] == 0x06064B50
    cd_size, cd_offset = eocd64[8], eocd64[9]
    assert cd_offset + cd_size == eocd64_offset
    assert archive[cd_offset : cd_offset + 4] == b"PK\x01\x02"


def assert_classic_end_record(archive: bytes) -> None:
    """No ZIP64 end records: the EOCD holds the real directory offset, no locator precedes it."""
    eocd = struct.unpack("<IHHHHIIH", archive[-22:])
    assert eocd[0] == 0x06054B50
    assert eocd[5] + eocd[6] == len(archive) - 22  # directory size + offset end at the EOCD
    assert archive[-42:-38] != b"PK\x06\x07"


def extra_ids(extra: bytes) -> list[int]:
    ids = []
    while extra:
        tp, ln = struct.unpack("<HH", extra[:4])
        ids.append(tp)
        extra = extra[4 + ln :]
    return ids


# --- write_zip ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "chunk_size"),
    [
        pytest.param(b"", MIB, id="empty"),
        pytest.param(b"hello, world\n", MIB, id="small"),
        pytest.param(text_data(5 * MIB + 12345), MIB, id="multi-chunk-text"),
        pytest.param(random_data(3 * MIB + 7), 2 * MIB, id="random"),
    ],
)
async def test_write_zip_round_trips(data: bytes, chunk_size: int, tmp_path: Path) -> None:
    info, sink = await compress(data, chunk_size=chunk_size)
    archive = sink.data

    zf, entry = only_entry(archive)
    assert zf.read("doc.txt") == data
    assert entry.file_size == len(data)
    assert entry.CRC == zlib.crc32(data)
    assert entry.compress_type == zipfile.ZIP_DEFLATED
    assert entry.date_time == (2024, 5, 6, 7, 8, 10)
    assert entry.flag_bits & 0x0808 == 0x0808  # data descriptor + UTF-8
    assert_unzip_accepts(archive, tmp_path)

    assert info.size == len(data)
    assert info.crc32 == zlib.crc32(data)
    assert info.compressed_size == entry.compress_size
    assert info.archive_size == len(archive)
    assert info.method == zipstream.METHOD_DEFLATED
    # data_offset/compressed_size must delimit exactly the raw deflate stream: build_layout
    # serves those bytes verbatim.
    raw = archive[info.data_offset : info.data_offset + info.compressed_size]
    assert zlib.decompress(raw, wbits=-15) == data
    descriptor = archive[info.data_offset + info.compressed_size :][:24]
    assert descriptor == struct.pack(
        "<IIQQ", 0x08074B50, info.crc32, info.compressed_size, info.size
    )


async def test_write_zip_batches_output_into_large_pieces() -> None:
    data = text_data(6 * MIB)
    # Tiny input chunks must not turn into tiny writes.
    info, sink = await compress(data, chunk_size=4096)
    assert len(sink.pieces) > 1
    assert all(n >= zipstream.WRITE_SIZE for n in sink.pieces[:-1])
    assert sum(sink.pieces) == info.archive_size
    assert zipfile.ZipFile(io.BytesIO(sink.data)).read("doc.txt") == data


async def test_write_zip_small_file_is_a_single_write() -> None:
    _, sink = await compress(b"x" * 1000)
    assert len(sink.pieces) == 1


async def test_write_zip_compresses_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    compress_threads: list[int] = []
    real_compress_chunk = zipstream.writer._compress_chunk

    def recording(*args):
        compress_threads.append(threading.get_ident())
        return real_compress_chunk(*args)

    monkeypatch.setattr(zipstream.writer, "_compress_chunk", recording)
    sink = Sink()
    await write_zip(aiter_list([b"", b"a" * 1000, b"", b"b" * 2000]), "x", sink, modified=WHEN)
    assert len(compress_threads) == 2  # one per non-empty chunk; empty chunks are skipped
    assert loop_thread not in compress_threads
    assert zipfile.ZipFile(io.BytesIO(sink.data)).read("x") == b"a" * 1000 + b"b" * 2000


@pytest.mark.parametrize("level", [0, 1, 2, 3])
async def test_write_zip_levels(level: int) -> None:
    data = text_data(300_000)
    _, sink = await compress(data, level=level)
    assert zipfile.ZipFile(io.BytesIO(sink.data)).read("doc.txt") == data


async def test_non_ascii_name_round_trips(tmp_path: Path) -> None:
    name = "résumé 日本語 ✓.txt"
    data = b"contenu\n" * 100
    info, sink = await compress(data, name=name)
    zf, entry = only_entry(sink.data)
    assert entry.filename == name
    assert entry.flag_bits & 0x800
    assert zf.read(name) == data
    assert_unzip_accepts(sink.data, tmp_path)

    renamed = "Überweisung März € 2025.txt"
    layout = build_layout(info, renamed, modified=LATER)
    archive = await collect(layout, Store(sink.data))
    zf, entry = only_entry(archive)
    assert entry.filename == renamed
    assert entry.flag_bits & 0x800
    assert zf.read(renamed) == data
    assert_unzip_accepts(archive, tmp_path)


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 65536])
async def test_invalid_names_are_rejected_before_writing(name: str) -> None:
    sink = Sink()
    with pytest.raises(ValueError, match="name"):
        await write_zip(aiter_list([b"data"]), name, sink, modified=WHEN)
    assert sink.pieces == []


# --- build_layout / iter_layout -----------------------------------------------------------


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


# Digests of the literal segments (ranges as "<offset+length>") of single-document layouts as
# served since the first release. The documents' ETags do not hash these bytes, so a change here
# would splice different bytes into downloads resumed across a deployment.
PINNED_LAYOUTS = {
    "small-deflated": (
        ZipEntryInfo(0x1234ABCD, 1000, 600, 57, 800, 8),
        "report.pdf",
        WHEN,
        "929eae5dc9a77b6c308e0873df029871",
        736,
    ),
    "non-ascii": (
        ZipEntryInfo(0xDEADBEEF, 10, 12, 40, 100, 8),
        "Überweisung März € 2025.txt",
        WHEN,
        "48854791e79f2af191abbcf11232221a",
        190,
    ),
    "stored-empty": (
        ZipEntryInfo(0, 0, 0, 0, 0, 0),
        "empty",
        datetime(1975, 1, 1, tzinfo=UTC),
        "24decec4de8b689366a92071632998b3",
        126,
    ),
    "zip64-sizes": (
        ZipEntryInfo(0xCAFEBABE, 5 << 30, (4 << 30) + 7, 61, 5 << 30, 8),
        "big.bin",
        datetime(2200, 1, 1, tzinfo=UTC),
        "4198f10e5d58f554df9d0218066381a5",
        4294967531,
    ),
    "zip64-directory-offset": (
        ZipEntryInfo(0xCAFEBABE, (4 << 30) - 2, (4 << 30) - 3, 61, 5 << 30, 8),
        "near.bin",
        WHEN,
        "0a4097c6437518aee3ac3604acb20f87",
        4294967501,
    ),
}


@pytest.mark.parametrize("case", sorted(PINNED_LAYOUTS))
def test_single_document_layouts_stay_byte_identical(case: str) -> None:
    info, name, modified, digest, size = PINNED_LAYOUTS[case]
    layout = build_layout(info, name, modified=modified)
    hasher = hashlib.sha256()
    for segment in layout.segments:
        if isinstance(segment, bytes):
            hasher.update(segment)
        else:
            hasher.update(f"<{segment.offset}+{segment.length}>".encode())
    assert (hasher.hexdigest()[:32], layout.size) == (digest, size)


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


# --- ZIP64 --------------------------------------------------------------------------------


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
