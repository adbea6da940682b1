"""`write_zip`: one streamed entry, compressed off the event loop, read back by zipfile, unzip."""

from __future__ import annotations

import io
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import pytest
from tests.support.zips import (
    LATER,
    MIB,
    WHEN,
    Sink,
    Store,
    aiter_list,
    assert_unzip_accepts,
    collect,
    compress,
    only_entry,
    random_data,
    text_data,
)

from instashare import zipstream
from instashare.zipstream import (
    build_layout,
    write_zip,
)


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
