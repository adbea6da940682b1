"""Serving archives (a ready document's, or any built layout) with ranges and ETags."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE

from instashare.http_ranges import (
    ByteRange,
    RangeNotSatisfiableError,
    content_disposition,
    if_range_allows,
    none_match,
    parse_range,
)
from instashare.storage import Storage
from instashare.zipstream import (
    METHOD_DEFLATED,
    READ_AHEAD_MAX_BYTES,
    ArchiveEntry,
    ArchiveLayout,
    StoredRange,
    ZipEntryInfo,
    build_archive,
    iter_layout,
)

# Ranges this small are read whole, without a size lookup first; many of them together.
SMALL_READ_BYTES = READ_AHEAD_MAX_BYTES
# Headers and small entries are gathered into pieces this large before they are sent: one send
# per piece of a few dozen bytes would cost more than the bytes.
SEND_SIZE = 256 * 1024


@dataclass(frozen=True)
class Download:
    """What to send: the status, the headers and (unless 304) the body."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] | None
    start: int = 0  # where the body starts in the archive
    archive_size: int = 0


class ArchivedDocument(Protocol):
    """What serving a document's archive reads: a Document, or any record of those columns."""

    @property
    def id(self) -> UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def archive_key(self) -> str | None: ...
    @property
    def compressed_size(self) -> int | None: ...
    @property
    def archive_crc32(self) -> int | None: ...
    @property
    def archive_data_offset(self) -> int | None: ...
    @property
    def archive_data_size(self) -> int | None: ...


def archive_entry(document: ArchivedDocument, name: str | None = None) -> ArchiveEntry:
    """The document's stored archive as an entry named ``name`` (its own name by default)."""
    if (
        document.archive_crc32 is None
        or document.archive_data_offset is None
        or document.archive_data_size is None
        or document.compressed_size is None
    ):
        msg = f"document {document.id} is ready but has no archive metadata"
        raise RuntimeError(msg)
    info = ZipEntryInfo(
        crc32=document.archive_crc32,
        size=document.size,
        compressed_size=document.archive_data_size,
        data_offset=document.archive_data_offset,
        archive_size=document.compressed_size,
        method=METHOD_DEFLATED,
    )
    # The entry's time is the upload's, so the archive (and its ETag) only changes with the name.
    return ArchiveEntry(
        info, name or document.name, document.created_at, source=document.archive_key or ""
    )


def archive_layout(document: ArchivedDocument) -> ArchiveLayout:
    return build_archive([archive_entry(document)])


def entity_tag(document: ArchivedDocument) -> str:
    # Everything that shapes the served bytes: the content, where it is stored and the name.
    fingerprint = f"{document.id}|{document.sha256}|{document.archive_key}|{document.name}"
    return '"' + hashlib.sha256(fingerprint.encode()).hexdigest()[:32] + '"'


def prepare_download(
    document: ArchivedDocument,
    storage: Storage,
    *,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
) -> Download:
    return prepare_archive_download(
        archive_layout(document),
        entity_tag(document),
        f"{document.name}.zip",
        storage,
        range_header=range_header,
        if_range=if_range,
        if_none_match=if_none_match,
    )


def prepare_archive_download(
    layout: ArchiveLayout,
    etag: str,
    filename: str,
    storage: Storage,
    *,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
    read_ahead: int = 0,
) -> Download:
    """Status, headers and body for a GET of ``layout`` given the request's conditional headers.

    ``etag`` must change whenever the layout's bytes would; a stale ``If-Range`` gets the
    whole archive, a matching ``If-None-Match`` a 304.
    """
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(filename),
    }
    if none_match(if_none_match, etag):
        return Download(304, headers, None, archive_size=layout.size)
    wanted: ByteRange | None = None
    if if_range_allows(if_range, etag):
        try:
            wanted = parse_range(range_header, layout.size)
        except RangeNotSatisfiableError as exc:
            raise HTTPException(
                status_code=HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                detail=f"the archive has {layout.size} bytes; the requested range is outside it",
                headers={"Content-Range": f"bytes */{layout.size}"},
            ) from exc

    async def read_range(source: str, offset: int, length: int) -> AsyncIterator[bytes]:
        if length <= SMALL_READ_BYTES:
            [data] = await storage.read_ranges([(source, offset, length)])
            yield data
            return
        async for chunk in storage.read(source, start=offset, length=length):
            yield chunk

    async def read_batch(ranges: Sequence[StoredRange]) -> list[bytes]:
        return await storage.read_ranges([(r.source, r.offset, r.length) for r in ranges])

    start, end = (0, layout.size) if wanted is None else (wanted.start, wanted.end)
    body = _coalesced(
        iter_layout(layout, read_range, start, end, read_ahead=read_ahead, read_batch=read_batch)
    )
    if wanted is None:
        headers["Content-Length"] = str(layout.size)
        return Download(200, headers, body, archive_size=layout.size)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(layout.size)
    return Download(206, headers, body, start=wanted.start, archive_size=layout.size)


async def _coalesced(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The same bytes in pieces of at least SEND_SIZE (but the last)."""
    pending: list[bytes] = []
    held = 0
    try:
        async for chunk in chunks:
            if not held and len(chunk) >= SEND_SIZE:
                yield chunk
                continue
            pending.append(chunk)
            held += len(chunk)
            if held >= SEND_SIZE:
                yield b"".join(pending)
                pending.clear()
                held = 0
        if pending:
            yield b"".join(pending)
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
