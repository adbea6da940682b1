"""HTTP routes of the owner's shares, and of the shares other people shared with the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, route
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import HttpMethod
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from instashare.accounts.principals import Principal
from instashare.config import Settings
from instashare.errors import ConflictException
from instashare.shares.access import SHARE_NOT_FOUND, ShareAccess
from instashare.shares.delivery import DeliveryLedger, identify
from instashare.shares.downloads import Requester, serve_file, serve_share
from instashare.shares.links import ShareKeys
from instashare.shares.models import Share, ShareDownload
from instashare.shares.schemas import (
    Owner,
    Receipt,
    ReceiptPage,
    ShareCreate,
    SharedFile,
    SharedWithMe,
    SharedWithMePage,
    SharePage,
    ShareRead,
    ShareUpdate,
)
from instashare.shares.services import ShareLimits, ShareService
from instashare.storage import Storage

Limit = Annotated[int, Parameter(ge=1, le=100)]
Offset = Annotated[int, Parameter(ge=0, le=10_000_000)]
DOWNLOAD_METHODS = [HttpMethod.GET, HttpMethod.HEAD]


async def provide_share_service(db_session: AsyncSession) -> AsyncIterator[ShareService]:
    async with ShareService.new(session=db_session) as service:
        yield service


def provide_ledger(db_engine: AsyncEngine, settings: Settings) -> DeliveryLedger:
    return DeliveryLedger(db_engine, timedelta(hours=settings.share_resume_window_hours))


def provide_share_access(db_session: AsyncSession, share_keys: ShareKeys) -> ShareAccess:
    return ShareAccess(db_session, share_keys)


# Shared by the three controllers of this domain (``share_keys`` is provided app-wide).
SHARE_DEPENDENCIES = {
    "ledger": Provide(provide_ledger, sync_to_thread=False),
    "share_access": Provide(provide_share_access, sync_to_thread=False),
}


def public_base(request: Request[Any, Any, Any], settings: Settings) -> str:
    """PUBLIC_URL when set; else the scheme and host this request came to."""
    return settings.public_url or str(request.base_url).rstrip("/")


def share_read(share: Share, base: str, keys: ShareKeys) -> ShareRead:
    return ShareRead(
        id=share.id,
        url=f"{base}/s/{keys.link_token(share.id, share.link_nonce)}",
        title=share.title,
        message=share.message,
        document_ids=share.document_ids,
        recipients=share.recipient_emails,
        expires_at=share.expires_at,
        has_password=share.password_hash is not None,
        max_downloads=share.max_downloads,
        download_count=share.download_count,
        view_count=share.view_count,
        created_at=share.created_at,
        updated_at=share.updated_at,
    )


def receipt(row: ShareDownload) -> Receipt:
    return Receipt(
        at=row.created_at,
        bytes=row.bytes_sent,
        completed=row.completed,
        client=row.client,
        user_agent=row.user_agent,
        recipient=row.recipient,
        document_id=row.document_id,
    )


class ShareController(Controller):
    path = "/api/shares"
    tags = ["shares"]
    dependencies = {"shares": Provide(provide_share_service), **SHARE_DEPENDENCIES}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Share documents through a secret link and/or with people",
        raises=[ValidationException, NotFoundException],
    )
    async def create_share(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        settings: Settings,
        share_keys: ShareKeys,
        data: ShareCreate,
    ) -> Response[ShareRead]:
        share = await shares.create_share(
            request.user.id, data, ShareLimits.from_settings(settings)
        )
        return Response(
            share_read(share, public_base(request, settings), share_keys),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"{self.path}/{share.id}"},
        )

    @get("/", summary="Your shares, newest first")
    async def list_shares(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        settings: Settings,
        share_keys: ShareKeys,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> SharePage:
        items, total = await shares.list_owned(request.user.id, limit=limit, offset=offset)
        base = public_base(request, settings)
        return SharePage(
            items=[share_read(item, base, share_keys) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    @get("/{share_id:uuid}", summary="One of your shares", raises=[NotFoundException])
    async def get_share(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        settings: Settings,
        share_keys: ShareKeys,
        share_id: UUID,
    ) -> ShareRead:
        share = await shares.get_owned(share_id, request.user.id)
        return share_read(share, public_base(request, settings), share_keys)

    @patch(
        "/{share_id:uuid}",
        summary="Change a share; its link stays the same",
        description='`"password": null` removes the password; `"expires_at": null` and '
        '`"max_downloads": null` lift the limit.',
        raises=[ValidationException, NotFoundException],
    )
    async def update_share(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        settings: Settings,
        share_keys: ShareKeys,
        share_id: UUID,
        data: ShareUpdate,
    ) -> ShareRead:
        limits = ShareLimits.from_settings(settings)
        share = await shares.edit_share(share_id, request.user.id, data, limits)
        return share_read(share, public_base(request, settings), share_keys)

    @post(
        "/{share_id:uuid}/rotate",
        status_code=200,
        summary="Replace the link; the old one stops working at once",
        raises=[NotFoundException],
    )
    async def rotate_share(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        settings: Settings,
        share_keys: ShareKeys,
        share_id: UUID,
    ) -> ShareRead:
        share = await shares.rotate(share_id, request.user.id)
        return share_read(share, public_base(request, settings), share_keys)

    @delete(
        "/{share_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke a share: the link dies and recipients lose access",
        raises=[NotFoundException],
    )
    async def revoke_share(
        self, request: Request[Principal, Token, State], shares: ShareService, share_id: UUID
    ) -> None:
        await shares.revoke(share_id, request.user.id)

    @get(
        "/{share_id:uuid}/downloads",
        summary="Receipts of the share's downloads, newest first",
        raises=[NotFoundException],
    )
    async def list_receipts(
        self,
        request: Request[Principal, Token, State],
        shares: ShareService,
        share_id: UUID,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> ReceiptPage:
        rows, total = await shares.receipts(share_id, request.user.id, limit=limit, offset=offset)
        return ReceiptPage(
            items=[receipt(row) for row in rows], total=total, limit=limit, offset=offset
        )


class SharedWithMeController(Controller):
    path = "/api/shared-with-me"
    tags = ["shares"]
    dependencies = SHARE_DEPENDENCIES

    @get("/", summary="Shares other people shared with you, newest first")
    async def list_shared(
        self,
        request: Request[Principal, Token, State],
        share_access: ShareAccess,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> SharedWithMePage:
        entries, total = await share_access.shared_with(
            request.user.email, limit=limit, offset=offset
        )
        items = [
            SharedWithMe(
                id=entry.share.id,
                title=entry.share.title,
                message=entry.share.message,
                owner=Owner(email=entry.owner.email, full_name=entry.owner.full_name),
                files=[
                    SharedFile(id=d.id, name=d.name, size=d.size, status=d.status)
                    for d in entry.documents
                ],
                expires_at=entry.share.expires_at,
                created_at=entry.share.created_at,
            )
            for entry in entries
        ]
        return SharedWithMePage(items=items, total=total, limit=limit, offset=offset)

    @route(
        "/{share_id:uuid}/download",
        http_method=DOWNLOAD_METHODS,
        summary="Download a share shared with you as one ZIP",
        raises=[NotFoundException, ConflictException],
    )
    async def download_shared(
        self,
        request: Request[Principal, Token, State],
        share_access: ShareAccess,
        ledger: DeliveryLedger,
        storage: Storage,
        settings: Settings,
        share_id: UUID,
    ) -> Response[Any]:
        share = await share_access.for_recipient(share_id, request.user.email)
        documents = await share_access.documents(share, absent=SHARE_NOT_FOUND)
        requester = _recipient(request, settings)
        return await serve_share(request, share, documents, requester, ledger, storage)

    @route(
        "/{share_id:uuid}/files/{document_id:uuid}",
        http_method=DOWNLOAD_METHODS,
        summary="Download one file of a share shared with you",
        raises=[NotFoundException],
    )
    async def download_shared_file(
        self,
        request: Request[Principal, Token, State],
        share_access: ShareAccess,
        ledger: DeliveryLedger,
        storage: Storage,
        settings: Settings,
        share_id: UUID,
        document_id: UUID,
    ) -> Response[Any]:
        share = await share_access.for_recipient(share_id, request.user.email)
        documents = await share_access.documents(share, absent=SHARE_NOT_FOUND)
        requester = _recipient(request, settings)
        return await serve_file(request, share, documents, document_id, requester, ledger, storage)


def _recipient(request: Request[Principal, Token, State], settings: Settings) -> Requester:
    user = request.user
    downloader = identify(request, settings, recipient_id=user.id, recipient_email=user.email)
    return Requester(downloader=downloader, limited=False)
