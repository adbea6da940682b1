"""Serving a ready document as a ZIP named after its current name, with ranges and ETags."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE

from instashare.documents.models import Document
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
    ArchiveLayout,
    ZipEntryInfo,
    build_layout,
    iter_layout,
)


@dataclass(frozen=True)
class Download:
    """What to send: the status, the headers and (unless 304) the body."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes] | None


def archive_layout(document: Document) -> ArchiveLayout:
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
    return build_layout(info, document.name, modified=document.created_at)


def entity_tag(document: Document) -> str:
    # Everything that shapes the served bytes: the content, where it is stored and the name.
    fingerprint = f"{document.id}|{document.sha256}|{document.archive_key}|{document.name}"
    return '"' + hashlib.sha256(fingerprint.encode()).hexdigest()[:32] + '"'


def prepare_download(
    document: Document,
    storage: Storage,
    *,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
) -> Download:
    layout = archive_layout(document)
    etag = entity_tag(document)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(f"{document.name}.zip"),
    }
    if none_match(if_none_match, etag):
        return Download(304, headers, None)
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
    archive_key = document.archive_key or ""

    def read_range(offset: int, length: int) -> AsyncIterator[bytes]:
        return storage.read(archive_key, start=offset, length=length)

    if wanted is None:
        headers["Content-Length"] = str(layout.size)
        return Download(200, headers, iter_layout(layout, read_range))
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(layout.size)
    return Download(206, headers, iter_layout(layout, read_range, wanted.start, wanted.end))
