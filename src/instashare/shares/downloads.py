"""Answering a download of a share's ZIP or of one of its files, for the link and for recipients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request, Response
from litestar.exceptions import NotFoundException
from litestar.status_codes import HTTP_409_CONFLICT

from instashare.documents.downloads import (
    Download,
    entity_tag,
    prepare_archive_download,
    prepare_download,
)
from instashare.documents.models import DocumentStatus
from instashare.documents.schemas import NotReady
from instashare.errors import ConflictException
from instashare.shares.access import SharedDocument, gone, used_up
from instashare.shares.archive import share_archive
from instashare.shares.delivery import DeliveryLedger, DeliveryRecorder, Downloader
from instashare.shares.models import Share
from instashare.shares.streaming import TrackedStream
from instashare.storage import Storage

# Small entries fetched ahead of their turn: how many at once (see zipstream.iter_layout).
READ_AHEAD = 8
ZIP = "application/zip"


@dataclass(frozen=True)
class Requester:
    """Who is downloading, and whether the link's download limit applies to them."""

    downloader: Downloader
    limited: bool  # True for the public link, False for recipients


def _conditions(request: Request[Any, Any, Any]) -> dict[str, str | None]:
    return {
        "range_header": request.headers.get("range"),
        "if_range": request.headers.get("if-range"),
        "if_none_match": request.headers.get("if-none-match"),
    }


async def serve_share(
    request: Request[Any, Any, Any],
    share: Share,
    documents: Sequence[SharedDocument],
    requester: Requester,
    ledger: DeliveryLedger,
    storage: Storage,
) -> Response[Any]:
    archive = share_archive(documents, share.title)
    if archive is None:
        raise ConflictException(detail="no file of this share is ready for download yet")
    await _check_limit(share, requester, ledger, archive.etag)
    download = prepare_archive_download(
        archive.layout,
        archive.etag,
        archive.filename,
        storage,
        read_ahead=READ_AHEAD,
        **_conditions(request),
    )
    return await _respond(request, download, share.id, None, requester, ledger)


async def serve_file(
    request: Request[Any, Any, Any],
    share: Share,
    documents: Sequence[SharedDocument],
    document_id: UUID,
    requester: Requester,
    ledger: DeliveryLedger,
    storage: Storage,
) -> Response[Any]:
    document = next((d for d in documents if d.id == document_id), None)
    if document is None:
        raise NotFoundException(detail="file not found")
    if document.status != DocumentStatus.READY:
        return Response(
            NotReady(
                status_code=HTTP_409_CONFLICT,
                detail=f"the file is {document.status.value}, not ready for download",
                status=document.status,
            ),
            status_code=HTTP_409_CONFLICT,
        )
    await _check_limit(share, requester, ledger, entity_tag(document))
    download = prepare_download(document, storage, **_conditions(request))
    return await _respond(request, download, share.id, document.id, requester, ledger)


async def _check_limit(
    share: Share, requester: Requester, ledger: DeliveryLedger, etag: str
) -> None:
    """A used-up link serves only downloads already under way, to their end."""
    if (
        requester.limited
        and used_up(share)
        and not await ledger.under_way(share.id, requester.downloader, etag)
    ):
        raise gone()


async def _respond(
    request: Request[Any, Any, Any],
    download: Download,
    share_id: UUID,
    document_id: UUID | None,
    requester: Requester,
    ledger: DeliveryLedger,
) -> Response[Any]:
    if download.body is None:  # 304
        return Response(None, status_code=download.status_code, headers=download.headers)
    if request.method == "HEAD":
        await _close(download)
        return Response(
            b"", status_code=download.status_code, headers=download.headers, media_type=ZIP
        )
    etag = download.headers["ETag"]
    try:
        download_id = await ledger.begin(
            share_id, requester.downloader, etag, download.archive_size, document_id
        )
    except BaseException:
        await _close(download)
        raise
    return TrackedStream(
        download.body,
        recorder=DeliveryRecorder(ledger, download_id, download.start),
        headers=download.headers,
        status_code=download.status_code,
        media_type=ZIP,
    )


async def _close(download: Download) -> None:
    # The body was never started; closing it just tells the generator it will not be.
    close = getattr(download.body, "aclose", None)
    if close is not None:
        await close()
