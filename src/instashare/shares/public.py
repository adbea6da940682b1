"""The link's routes, ``/s/{token}``: no account, the token is the credential."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, MediaType, Request, Response, get, post, route
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    TooManyRequestsException,
    ValidationException,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from instashare.config import Settings
from instashare.errors import ConflictException
from instashare.shares.access import (
    ShareAccess,
    SharedDocument,
    downloads_left,
    gone,
    unlock_throttle,
    used_up,
)
from instashare.shares.controllers import DOWNLOAD_METHODS, SHARE_DEPENDENCIES
from instashare.shares.delivery import DeliveryLedger, identify
from instashare.shares.downloads import Requester, serve_file, serve_share
from instashare.shares.links import ShareKeys
from instashare.shares.models import Share
from instashare.shares.page import PAGE_HEADERS, render_page
from instashare.shares.schemas import PublicShare, SharedFile, Unlock, UnlockToken
from instashare.storage import Storage

LOCKED = (
    "this share needs a password: POST it to this link's /unlock and send the token it returns "
    "as Authorization: Bearer"
)
# The link is in the URL: keep it out of other sites' Referer headers, caches and indexes.
LINK_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


class PublicShareController(Controller):
    path = "/s/{token:str}"
    tags = ["shares"]
    dependencies = SHARE_DEPENDENCIES
    response_headers = LINK_HEADERS

    @get(
        "/",
        summary="What a link shares (JSON), or its page for a browser asking for HTML",
        raises=[NotFoundException],
    )
    async def view(
        self, request: Request[Any, Any, Any], share_access: ShareAccess, token: str
    ) -> Response[Any]:
        share = await share_access.by_link(token)
        # Read even while locked: a share emptied by deletions is a dead link, locked or not.
        documents = await share_access.documents(share)
        if used_up(share):
            raise gone()
        await share_access.count_view(share)
        locked = share.password_hash is not None and (
            share_access.grant(share, request.headers.get("authorization")) is None
        )
        shown = [] if locked else documents
        public = PublicShare(
            title=share.title,
            message=share.message,
            expires_at=share.expires_at,
            password_required=locked,
            downloads_left=downloads_left(share),
            files=[_file(document) for document in shown],
            total_size=sum(document.size for document in shown),
        )
        headers = {"Cache-Control": "no-store"}
        wanted = request.accept.best_match([MediaType.JSON, MediaType.HTML], MediaType.JSON)
        if wanted == MediaType.HTML:
            return Response(
                render_page(public, token),
                media_type=MediaType.HTML,
                headers={**headers, **PAGE_HEADERS},
            )
        return Response(public, headers=headers)

    @post(
        "/unlock",
        status_code=200,
        summary="Exchange the share's password for a token valid for this share alone",
        description="Send the token as `Authorization: Bearer`. Wrong passwords are limited "
        "per share, whatever the client's address (429 with `Retry-After`).",
        raises=[NotFoundException, NotAuthorizedException, TooManyRequestsException],
    )
    async def unlock(
        self,
        share_access: ShareAccess,
        share_keys: ShareKeys,
        db_engine: AsyncEngine,
        settings: Settings,
        token: str,
        data: Unlock,
    ) -> UnlockToken:
        share = await share_access.by_link(token)
        await share_access.documents(share)  # an emptied share is a dead link
        if used_up(share):
            raise gone()
        throttle = unlock_throttle(db_engine, settings)
        access_token = await share_access.unlock(share, data.password, throttle)
        return UnlockToken(access_token=access_token, expires_in=share_keys.unlock_ttl_seconds)

    @route(
        "/download",
        http_method=DOWNLOAD_METHODS,
        summary="Every ready file of the share as one ZIP",
        description="Exact `Content-Length` and `ETag`; `Range` (206), `If-Range`, "
        "`If-None-Match` (304) and `HEAD` work as for a single download.",
        raises=[NotFoundException, NotAuthorizedException, ConflictException],
    )
    async def download(
        self,
        request: Request[Any, Any, Any],
        share_access: ShareAccess,
        ledger: DeliveryLedger,
        storage: Storage,
        settings: Settings,
        token: str,
    ) -> Response[Any]:
        share, documents, requester = await _open(request, share_access, settings, token)
        return await serve_share(request, share, documents, requester, ledger, storage)

    @route(
        "/files/{document_id:uuid}",
        http_method=DOWNLOAD_METHODS,
        summary="One file of the share, as its owner would download it",
        raises=[NotFoundException, NotAuthorizedException, ValidationException],
    )
    async def download_file(
        self,
        request: Request[Any, Any, Any],
        share_access: ShareAccess,
        ledger: DeliveryLedger,
        storage: Storage,
        settings: Settings,
        token: str,
        document_id: UUID,
    ) -> Response[Any]:
        share, documents, requester = await _open(request, share_access, settings, token)
        return await serve_file(request, share, documents, document_id, requester, ledger, storage)


async def _open(
    request: Request[Any, Any, Any], share_access: ShareAccess, settings: Settings, token: str
) -> tuple[Share, list[SharedDocument], Requester]:
    """The share behind the link, its documents, and who asks; 401 until the password is given."""
    share = await share_access.by_link(token)
    documents = await share_access.documents(share)
    grant = share_access.grant(share, request.headers.get("authorization"))
    if share.password_hash is not None and grant is None:
        if used_up(share):  # a used-up link is gone for everyone who has not started
            raise gone()
        raise NotAuthorizedException(detail=LOCKED)
    downloader = identify(
        request, settings, unlock_token_id=grant.token_id if grant is not None else None
    )
    return share, documents, Requester(downloader=downloader, limited=True)


def _file(document: SharedDocument) -> SharedFile:
    return SharedFile(
        id=document.id, name=document.name, size=document.size, status=document.status
    )
