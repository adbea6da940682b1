"""HTTP routes of the documents domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import InternalServerException
from litestar.params import Parameter
from litestar.response import Stream
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT, HTTP_409_CONFLICT
from sqlalchemy.ext.asyncio import AsyncSession

from instashare.accounts.principals import Principal
from instashare.config import Settings
from instashare.documents.downloads import prepare_download
from instashare.documents.jobs import enqueue_after_upload
from instashare.documents.models import DocumentStatus
from instashare.documents.schemas import DocumentPage, DocumentRead, DocumentRename, NotReady
from instashare.documents.services import DocumentService, SortField, UploadLimits
from instashare.errors import ClientDisconnectedException
from instashare.storage import Storage
from instashare.validation import reject_control_characters
from instashare.worker.queue import JobQueue


async def provide_document_service(db_session: AsyncSession) -> AsyncIterator[DocumentService]:
    async with DocumentService.new(session=db_session) as service:
        yield service


async def _request_body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:  # how Litestar reports a vanished client
        raise ClientDisconnectedException(detail="the client disconnected mid-upload") from exc


class DocumentController(Controller):
    path = "/api/documents"
    tags = ["documents"]
    dependencies = {"documents": Provide(provide_document_service)}

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Upload a file",
        description=(
            "`multipart/form-data` with the file in field `file` and an optional text field "
            "`name`. The body is streamed to storage; the document starts `pending` and is "
            "compressed in the background."
        ),
        # Size limits are enforced while streaming (MAX_UPLOAD_BYTES and the owner's quota).
        request_max_body_size=None,
    )
    async def upload(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
    ) -> Response[DocumentRead]:
        document = await documents.upload(
            request.user.id,
            _request_body(request),
            content_type=request.headers.get("content-type", ""),
            content_length=request.content_length,
            storage=storage,
            limits=UploadLimits(settings.max_upload_bytes, settings.user_quota_bytes),
        )
        await enqueue_after_upload(queue, document.id, settings)
        return Response(
            DocumentRead.from_model(document),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"{self.path}/{document.id}"},
        )

    @get("/", summary="List your documents")
    async def list_documents(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0,
        status: DocumentStatus | None = None,
        q: Annotated[str | None, Parameter(max_length=255)] = None,
        order_by: SortField = "created_at",
        sort_order: Literal["asc", "desc"] = "desc",
    ) -> DocumentPage:
        reject_control_characters("q", q)
        items, total = await documents.list_owned(
            request.user.id,
            limit=limit,
            offset=offset,
            status=status,
            q=q,
            order_by=order_by,
            sort_order=sort_order,
        )
        return DocumentPage(
            items=[DocumentRead.from_model(item) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    @get("/{document_id:uuid}", summary="One of your documents")
    async def get_document(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        document_id: UUID,
    ) -> DocumentRead:
        return DocumentRead.from_model(await documents.get_owned(document_id, request.user.id))

    @patch("/{document_id:uuid}", summary="Rename a document")
    async def rename(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        document_id: UUID,
        data: DocumentRename,
    ) -> DocumentRead:
        document = await documents.rename(document_id, request.user.id, data.name)
        return DocumentRead.from_model(document)

    @get(
        "/{document_id:uuid}/download",
        summary="Download a ready document as a ZIP",
        description=(
            "A ZIP archive with one entry named after the document's current name holding "
            "exactly the uploaded bytes. Supports `Range` (206) and `If-None-Match` (304); "
            "409 with the current `status` while the document is not ready."
        ),
    )
    async def download(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        storage: Storage,
        document_id: UUID,
    ) -> Response[Any]:
        document = await documents.get_owned(document_id, request.user.id)
        if document.status != DocumentStatus.READY:
            return Response(
                NotReady(
                    status_code=HTTP_409_CONFLICT,
                    detail=f"the document is {document.status.value}, not ready for download",
                    status=document.status,
                ),
                status_code=HTTP_409_CONFLICT,
            )
        download = prepare_download(
            document,
            storage,
            range_header=request.headers.get("range"),
            if_range=request.headers.get("if-range"),
            if_none_match=request.headers.get("if-none-match"),
        )
        if download.body is None:
            return Response(None, status_code=download.status_code, headers=download.headers)
        return Stream(
            download.body,
            status_code=download.status_code,
            headers=download.headers,
            media_type="application/zip",
        )

    @delete("/{document_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Delete a document")
    async def delete_document(
        self,
        request: Request[Principal, Token, State],
        documents: DocumentService,
        storage: Storage,
        document_id: UUID,
    ) -> None:
        await documents.remove(document_id, request.user.id, storage)
