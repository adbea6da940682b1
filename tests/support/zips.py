"""Data, a fake object store and ZIP structure checks for the tests of `instashare.zipstream`."""

from __future__ import annotations

import io
import random
import shutil
import struct
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

from instashare.zipstream import (
    ArchiveLayout,
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
