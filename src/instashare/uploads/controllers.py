"""HTTP routes of resumable uploads: tus 1.0.0 under /api/uploads.

Every upload URL answers HEAD, PATCH and DELETE, and POST carrying ``X-HTTP-Method-Override``
for clients that cannot send the others (the header names the method meant, whatever method
carried it). Litestar picks a handler by the method before any middleware runs, so each handler
hands the request to one dispatcher that honours the override.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final
from uuid import UUID

from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import ClientException, InternalServerException
from litestar.security.jwt import Token
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
    HTTP_405_METHOD_NOT_ALLOWED,
    HTTP_408_REQUEST_TIMEOUT,
)
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from instashare.accounts.principals import Principal
from instashare.config import Settings
from instashare.documents.jobs import enqueue_after_upload
from instashare.errors import ClientDisconnectedException
from instashare.logs import get_logger
from instashare.storage import Storage
from instashare.uploads import protocol
from instashare.uploads.models import Upload
from instashare.uploads.receiving import (
    BodyInterruptedError,
    BodyStalledError,
    Chunk,
    finish_pending,
    receive,
    terminate,
)
from instashare.uploads.schemas import error_responses, headers, no_body
from instashare.uploads.services import UploadPolicy, UploadService
from instashare.worker.queue import JobQueue

log = get_logger(__name__)
PATH: Final = "/api/uploads"
# A request body that sends nothing for this long is given up (its progress kept), so a
# vanished client does not hold the upload's lock until TCP notices.
BODY_STALL_SECONDS: Final = 60.0


async def provide_upload_service(db_session: AsyncSession) -> AsyncIterator[UploadService]:
    async with UploadService.new(session=db_session) as service:
        yield service


async def add_tus_resumable(message: Message, scope: Scope) -> None:
    """Every answer under /api/uploads names the protocol version (tus requires it), errors
    and authentication failures included: an app-wide ``before_send`` hook."""
    if message["type"] != "http.response.start" or not scope.get("path", "").startswith(PATH):
        return
    present = message.get("headers", [])
    if all(name.lower() != b"tus-resumable" for name, _ in present):
        message["headers"] = [*present, (b"tus-resumable", protocol.TUS_VERSION.encode())]


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    stream = request.stream()
    while True:
        try:
            async with asyncio.timeout(BODY_STALL_SECONDS):
                data = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise BodyStalledError("no bytes arrived for a while") from exc
        except InternalServerException as exc:  # how Litestar reports a vanished client
            raise BodyInterruptedError("the client disconnected") from exc
        if data:
            yield data


def _answer(status_code: int, headers: dict[str, str] | None = None) -> Response[None]:
    """tus answers carry their data in headers, never a body."""
    return Response(None, status_code=status_code, headers=headers, media_type=MediaType.TEXT)


def _chunk(request: Request[Any, Any, Any], offset: int) -> Chunk:
    return Chunk(
        offset=offset,
        length=protocol.parse_content_length(request.headers),
        checksum=protocol.parse_checksum(request.headers),
    )


def _progress_headers(upload: Upload) -> dict[str, str]:
    answer = {"Upload-Offset": str(upload.upload_offset)}
    if upload.completed_at is None:
        answer["Upload-Expires"] = protocol.format_expires(upload.expires_at)
    else:
        answer["Document-Id"] = str(upload.document_id)
    return answer


async def _received(
    request: Request[Principal, Token, State],
    engine: AsyncEngine,
    storage: Storage,
    upload_id: UUID,
    chunk: Chunk,
    policy: UploadPolicy,
) -> tuple[Upload, bool]:
    try:
        return await receive(
            engine, storage, upload_id, request.user.id, chunk, _body(request), policy
        )
    except BodyStalledError as exc:
        raise ClientException(
            status_code=HTTP_408_REQUEST_TIMEOUT,
            detail=f"the chunk stopped arriving for {BODY_STALL_SECONDS:g} s; what arrived was "
            "kept unless the chunk carried a checksum: ask HEAD for the offset",
        ) from exc
    except BodyInterruptedError as exc:
        raise ClientDisconnectedException(detail="the client disconnected mid-chunk") from exc


_ITEM_ERRORS = error_responses(400, 401, 404, 409, 410, 412, 413, 415, 423, 460)


class UploadController(Controller):
    path = PATH
    tags = ["uploads"]
    dependencies = {"uploads": Provide(provide_upload_service)}

    # One handler for both methods: Litestar adds its own OPTIONS handler to a path that has
    # none, and a separate one could lose to it depending on registration order.
    @route(
        "/",
        http_method=[HttpMethod.POST, HttpMethod.OPTIONS],
        status_code=HTTP_201_CREATED,
        summary="Create a resumable upload (POST); the server's tus capabilities (OPTIONS)",
        description=(
            "POST: `Upload-Length` and `Upload-Metadata` (`filename`, optional `name`, "
            "`filetype`, base64 values). Reserves `Upload-Length` of your quota. A body sent as "
            "`application/offset+octet-stream` is the upload's first chunk. Answers 201 with "
            "`Location`.\n\nOPTIONS (no authentication): 204 with `Tus-Version`, "
            "`Tus-Extension`, `Tus-Max-Size` and `Tus-Checksum-Algorithm`."
        ),
        request_max_body_size=None,
        response_headers=headers(
            "Location",
            "Upload-Expires",
            "Upload-Offset",
            "Document-Id",
            "Tus-Version",
            "Tus-Extension",
            "Tus-Max-Size",
            "Tus-Checksum-Algorithm",
        ),
        responses={
            HTTP_204_NO_CONTENT: no_body("OPTIONS: the tus capabilities, in headers"),
            **error_responses(400, 401, 412, 413, 415, 460),
        },
    )
    async def create(
        self,
        request: Request[Principal, Token, State],
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        db_engine: AsyncEngine,
    ) -> Response[None]:
        if request.method == HttpMethod.OPTIONS:
            return _answer(HTTP_204_NO_CONTENT, protocol.options_headers(settings.max_upload_bytes))
        protocol.check_tus_resumable(request.headers)
        length = protocol.parse_upload_length(request.headers)
        metadata = protocol.parse_metadata(request.headers)
        with_chunk = protocol.carries_chunk(request.headers)
        chunk = _chunk(request, 0) if with_chunk else Chunk(0, 0)
        policy = UploadPolicy.from_settings(settings)
        upload = await uploads.start(request.user.id, length, metadata, policy)
        answer = {"Location": f"{PATH}/{upload.id}"}
        if with_chunk or length == 0:
            try:
                upload, completed = await _received(
                    request, db_engine, storage, upload.id, chunk, policy
                )
            except BaseException:
                # The client may never have seen the Location: nothing would resume this one.
                await self._terminate_quietly(db_engine, storage, upload.id, request.user.id)
                raise
            if completed:
                await enqueue_after_upload(queue, upload.document_id, settings)
        answer |= _progress_headers(upload)
        if not with_chunk:
            del answer["Upload-Offset"]
        return _answer(HTTP_201_CREATED, answer)

    @staticmethod
    async def _terminate_quietly(
        engine: AsyncEngine, storage: Storage, upload_id: UUID, owner_id: UUID
    ) -> None:
        try:
            await asyncio.shield(terminate(engine, storage, upload_id, owner_id))
        except Exception:
            log.exception("could not remove a failed creation's upload", upload_id=str(upload_id))

    async def _dispatch(
        self,
        request: Request[Principal, Token, State],
        upload_id: UUID,
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        engine: AsyncEngine,
        db_session: AsyncSession,
    ) -> Response[None]:
        method = protocol.method_override(request.method, request.headers)
        protocol.check_tus_resumable(request.headers)
        policy = UploadPolicy.from_settings(settings)
        if method == "HEAD":
            upload = await uploads.get_owned(upload_id, request.user.id)
            if upload.completed_at is None and upload.upload_offset == upload.length:
                upload = await finish_pending(engine, storage, upload.id, policy) or upload
                if upload.completed_at is not None:
                    await enqueue_after_upload(queue, upload.document_id, settings)
            answer = _progress_headers(upload)
            answer |= {"Upload-Length": str(upload.length), "Cache-Control": "no-store"}
            if upload.upload_metadata:
                answer["Upload-Metadata"] = upload.upload_metadata
            return _answer(HTTP_200_OK, answer)
        if method == "PATCH":
            protocol.check_chunk_content_type(request.headers)
            chunk = _chunk(request, protocol.parse_upload_offset(request.headers))
            # The bearer check's session would sit idle in a transaction for the whole chunk.
            await db_session.commit()
            upload, completed = await _received(request, engine, storage, upload_id, chunk, policy)
            if completed:
                await enqueue_after_upload(queue, upload.document_id, settings)
            return _answer(HTTP_204_NO_CONTENT, _progress_headers(upload))
        if method == "DELETE":
            await terminate(engine, storage, upload_id, request.user.id)
            return _answer(HTTP_204_NO_CONTENT)
        raise ClientException(
            status_code=HTTP_405_METHOD_NOT_ALLOWED,
            detail=f"an upload answers HEAD, PATCH and DELETE, not {method}",
        )

    @head(
        "/{upload_id:uuid}",
        summary="The upload's offset (where to continue) and length",
        response_headers=headers(
            "Upload-Offset",
            "Upload-Length",
            "Upload-Metadata",
            "Upload-Expires",
            "Document-Id",
            "Cache-Control",
        ),
        responses=_ITEM_ERRORS,
    )
    async def status(
        self,
        request: Request[Principal, Token, State],
        upload_id: UUID,
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        db_engine: AsyncEngine,
        db_session: AsyncSession,
    ) -> Response[None]:
        return await self._dispatch(
            request, upload_id, uploads, settings, storage, queue, db_engine, db_session
        )

    @patch(
        "/{upload_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Append a chunk at Upload-Offset",
        description=(
            "`Content-Type: application/offset+octet-stream`, `Upload-Offset` equal to the "
            "upload's offset, optional `Upload-Checksum` (`sha1` or `sha256`, base64 digest). "
            "The last chunk turns the upload into a document (`Document-Id`)."
        ),
        request_max_body_size=None,
        response_headers=headers("Upload-Offset", "Upload-Expires", "Document-Id"),
        responses=_ITEM_ERRORS,
    )
    async def append(
        self,
        request: Request[Principal, Token, State],
        upload_id: UUID,
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        db_engine: AsyncEngine,
        db_session: AsyncSession,
    ) -> Response[None]:
        return await self._dispatch(
            request, upload_id, uploads, settings, storage, queue, db_engine, db_session
        )

    @delete(
        "/{upload_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Terminate an upload: its bytes are removed and its reservation released",
        responses=_ITEM_ERRORS,
    )
    async def remove(
        self,
        request: Request[Principal, Token, State],
        upload_id: UUID,
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        db_engine: AsyncEngine,
        db_session: AsyncSession,
    ) -> Response[None]:
        return await self._dispatch(
            request, upload_id, uploads, settings, storage, queue, db_engine, db_session
        )

    @post(
        "/{upload_id:uuid}",
        summary="HEAD, PATCH or DELETE named by X-HTTP-Method-Override",
        status_code=HTTP_204_NO_CONTENT,
        request_max_body_size=None,
        responses={
            HTTP_200_OK: no_body("X-HTTP-Method-Override: HEAD, answered as HEAD"),
            **_ITEM_ERRORS,
            **error_responses(405),
        },
    )
    async def overridden(
        self,
        request: Request[Principal, Token, State],
        upload_id: UUID,
        uploads: UploadService,
        settings: Settings,
        storage: Storage,
        queue: JobQueue | None,
        db_engine: AsyncEngine,
        db_session: AsyncSession,
    ) -> Response[None]:
        return await self._dispatch(
            request, upload_id, uploads, settings, storage, queue, db_engine, db_session
        )
