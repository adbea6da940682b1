"""Document rules: streamed uploads within size and quota, listing, renames and deletes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from advanced_alchemy.filters import LimitOffset, OrderBy, SearchFilter, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar.exceptions import NotFoundException
from sqlalchemy import ColumnElement, Select, delete, func, select, update
from uuid_utils.compat import uuid7

from instashare.accounts.models import User
from instashare.documents.models import Document, DocumentStatus
from instashare.documents.multipart import (
    MalformedMultipartError,
    PartData,
    PartEnd,
    PartStart,
    parse_multipart,
)
from instashare.documents.names import (
    InvalidNameError,
    content_type_for,
    name_from_filename,
    validate_name,
)
from instashare.errors import PayloadTooLargeException
from instashare.logs import get_logger
from instashare.storage import Storage
from instashare.validation import invalid

log = get_logger(__name__)
# Form fields other than the file are small; anything bigger is not a name.
MAX_TEXT_FIELD_BYTES = 8 * 1024
# Boundaries, part headers and a name field: what a Content-Length may exceed the file by.
MULTIPART_OVERHEAD_ALLOWANCE = 64 * 1024
SortField = Literal["created_at", "name", "size"]


def original_key(document_id: UUID) -> str:
    return f"originals/{document_id}"


@dataclass
class UploadLimits:
    max_upload_bytes: int
    quota_bytes: int


@dataclass
class _ReceivedFile:
    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    stored: bool = False


class DocumentService(SQLAlchemyAsyncRepositoryService[Document]):
    class Repo(SQLAlchemyAsyncRepository[Document]):
        model_type = Document

    repository_type = Repo

    async def upload(
        self,
        owner_id: UUID,
        body: AsyncIterator[bytes],
        *,
        content_type: str,
        content_length: int | None,
        storage: Storage,
        limits: UploadLimits,
    ) -> Document:
        """Stream the form's ``file`` into storage and record it; all or nothing."""
        remaining_quota = limits.quota_bytes - await self._committed_bytes(owner_id)
        limit = min(limits.max_upload_bytes, remaining_quota)
        if content_length is not None and content_length > limit + MULTIPART_OVERHEAD_ALLOWANCE:
            raise self._too_large(limits, remaining_quota)

        document_id = uuid7()
        key = original_key(document_id)
        received = _ReceivedFile()
        name_field: str | None = None
        try:
            events = parse_multipart(body, content_type)
            async for event in events:
                if not isinstance(event, PartStart):
                    continue
                if event.filename is not None and event.field_name == "file":
                    if received.stored:
                        raise invalid("file", "send exactly one file per upload")
                    received.filename = event.filename
                    received.content_type = event.content_type
                    file_bytes = self._file_bytes(events, received, limit, limits, remaining_quota)
                    # Only a well-formed type reaches storage (S3 signs it into the request).
                    declared = content_type_for(event.content_type, event.filename)
                    await storage.upload(key, file_bytes, content_type=declared)
                    received.stored = True
                else:
                    value = await _read_text_field(events)
                    if event.field_name == "name":
                        name_field = value
            if not received.stored:
                raise invalid("file", "the form has no file in its 'file' field")
            name = choose_name(name_field, received.filename)
            document = Document(
                id=document_id,
                owner_id=owner_id,
                name=name,
                status=DocumentStatus.PENDING,
                size=received.size,
                content_type=content_type_for(received.content_type, name),
                sha256=received.sha256.hexdigest(),
                original_key=key,
            )
            return await self.record_upload(document, owner_id, limits)
        except MalformedMultipartError as exc:
            await self._discard(storage, key, received)
            raise invalid("file", str(exc)) from exc
        except BaseException:
            # Client errors, disconnects, cancellation, database failures: nothing stays behind.
            await self._discard(storage, key, received)
            raise

    async def _file_bytes(
        self,
        events: AsyncIterator[PartStart | PartData | PartEnd],
        received: _ReceivedFile,
        limit: int,
        limits: UploadLimits,
        remaining_quota: int,
    ) -> AsyncIterator[bytes]:
        async for event in events:
            if isinstance(event, PartEnd):
                return
            if isinstance(event, PartData):
                received.size += len(event.data)
                if received.size > limit:
                    # Stop reading at once: storage aborts the partial object.
                    raise self._too_large(limits, remaining_quota)
                received.sha256.update(event.data)
                yield event.data
        raise MalformedMultipartError("the body ended inside the file part")

    async def _committed_bytes(self, owner_id: UUID) -> int:
        """Bytes the owner stores plus those reserved by resumable uploads under way."""
        committed = await self.repository.session.scalar(
            select(User.bytes_used + User.bytes_reserved).where(User.id == owner_id)
        )
        return int(committed or 0)

    async def record_upload(
        self,
        document: Document,
        owner_id: UUID,
        limits: UploadLimits,
        *,
        reserved: int = 0,
        commit: bool = True,
    ) -> Document:
        """Add the stored upload's row and count it in the owner's totals, within quota.

        ``reserved`` is the part of the owner's reservation (a resumable upload's length) that
        this document uses up: it is released as the size is counted. Without ``commit`` the
        caller commits, together with its own changes.
        """
        session = self.repository.session
        # Locking the owner's row serializes their concurrent uploads, so together they stay
        # within quota, and keeps the owner's totals exact.
        totals = (
            await session.execute(
                select(User.bytes_used, User.bytes_reserved)
                .where(User.id == owner_id)
                .with_for_update()
            )
        ).one()
        committed = int(totals.bytes_used) + int(totals.bytes_reserved) - reserved
        # A reservation granted at creation stands even if the quota was lowered since.
        if document.size > reserved and committed + document.size > limits.quota_bytes:
            raise self._too_large(limits, limits.quota_bytes - committed)
        session.add(document)
        await session.execute(
            update(User)
            .where(User.id == owner_id)
            .values(
                document_count=User.document_count + 1,
                bytes_used=User.bytes_used + document.size,
                bytes_reserved=User.bytes_reserved - reserved,
            )
            .execution_options(synchronize_session=False)
        )
        if commit:
            await session.commit()
        else:
            await session.flush()
        return document

    @staticmethod
    async def _discard(storage: Storage, key: str, received: _ReceivedFile) -> None:
        if received.stored:
            try:
                await storage.delete(key)
            except Exception:  # the original error matters more; log the leftover
                log.exception("could not remove the object of a failed upload", key=key)

    @staticmethod
    def _too_large(limits: UploadLimits, remaining_quota: int) -> PayloadTooLargeException:
        return too_large(limits, remaining_quota)

    async def get_owned(self, document_id: UUID, owner_id: UUID) -> Document:
        document = await self.get_one_or_none(id=document_id, owner_id=owner_id)
        if document is None:
            # Someone else's document is as absent as a missing one.
            raise NotFoundException(detail="document not found")
        return document

    async def list_owned(
        self,
        owner_id: UUID,
        *,
        limit: int,
        offset: int,
        status: DocumentStatus | None,
        q: str | None,
        order_by: SortField,
        sort_order: Literal["asc", "desc"],
    ) -> tuple[Sequence[Document], int]:
        ordering: list[StatementFilter] = [
            OrderBy(field_name=order_by, sort_order=sort_order),
            # A stable tie-breaker, so pages never repeat or skip rows of equal sort keys.
            OrderBy(field_name="id", sort_order=sort_order),
        ]
        matching: list[StatementFilter | ColumnElement[bool]] = [Document.owner_id == owner_id]
        if status is not None:
            matching.append(Document.status == status)
        if q:
            matching.append(
                SearchFilter(field_name="name", value=q, ignore_case=True, escape_wildcards=True)
            )
        # Page through ids alone (an index-only scan for the default order), then fetch just
        # the rows of the page: deep offsets stay cheap.
        page = _filtered(
            select(Document.id), [*matching, *ordering, LimitOffset(limit=limit, offset=offset)]
        ).subquery()
        rows = _filtered(select(Document).join(page, Document.id == page.c.id), ordering)
        items = (await self.repository.session.scalars(rows)).all()
        if status is None and not q:
            # Kept in step with the rows by every upload and delete: no need to count them.
            total = await self.repository.session.scalar(
                select(User.document_count).where(User.id == owner_id)
            )
            total = int(total or 0)
        else:
            counted = _filtered(select(func.count()).select_from(Document), matching)
            total = int(await self.repository.session.scalar(counted) or 0)
        return items, total

    async def rename(self, document_id: UUID, owner_id: UUID, raw_name: str) -> Document:
        document = await self.get_owned(document_id, owner_id)
        try:
            document.name = validate_name(raw_name)
        except InvalidNameError as exc:
            raise invalid("name", str(exc)) from exc
        updated: Document = await self.repository.update(document, auto_commit=True)
        return updated

    async def remove(self, document_id: UUID, owner_id: UUID, storage: Storage) -> None:
        session = self.repository.session
        # One statement decides: of two concurrent deletes only one gets the row back, and the
        # keys come from the row as it is deleted, even if a job recorded an archive meanwhile.
        deleted = (
            await session.execute(
                delete(Document)
                .where(Document.id == document_id, Document.owner_id == owner_id)
                .returning(Document.size, Document.original_key, Document.archive_key)
            )
        ).one_or_none()
        if deleted is None:
            raise NotFoundException(detail="document not found")
        size, stored_original, stored_archive = deleted
        await session.execute(
            update(User)
            .where(User.id == owner_id)
            .values(document_count=User.document_count - 1, bytes_used=User.bytes_used - size)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        # A compression job still running for this document finds no row when it finishes and
        # removes the archive it wrote itself; what was recorded is removed now.
        keys = {original_key(document_id), stored_original, stored_archive}
        for key in sorted(k for k in keys if k):
            try:
                await storage.delete(key)
            except Exception:
                log.exception("could not remove a deleted document's object", key=key)


def too_large(limits: UploadLimits, remaining_quota: int) -> PayloadTooLargeException:
    """413, naming whichever limit the upload broke."""
    if remaining_quota < limits.max_upload_bytes:
        return PayloadTooLargeException(
            detail=f"the upload exceeds your remaining storage quota of "
            f"{max(remaining_quota, 0)} bytes"
        )
    return PayloadTooLargeException(
        detail=f"the upload exceeds the maximum size of {limits.max_upload_bytes} bytes"
    )


def choose_name(name_field: str | None, filename: str | None) -> str:
    """The document's name: the given name, else the uploaded file's base name (400 if unusable)."""
    try:
        if name_field is not None:
            return validate_name(name_field)
        return name_from_filename(filename or "")
    except InvalidNameError as exc:
        if name_field is None:
            message = f"the uploaded file name cannot be used ({exc}); send a 'name' field"
        else:
            message = str(exc)
        raise invalid("name", message) from exc


def _filtered(
    statement: Select[Any], filters: Sequence[StatementFilter | ColumnElement[bool]]
) -> Select[Any]:
    """Apply advanced-alchemy filters and plain conditions alike."""
    for item in filters:
        if isinstance(item, StatementFilter):
            statement = item.append_to_statement(statement, Document)
        else:
            statement = statement.where(item)
    return statement


async def _read_text_field(events: AsyncIterator[PartStart | PartData | PartEnd]) -> str:
    value = bytearray()
    async for event in events:
        if isinstance(event, PartEnd):
            break
        if isinstance(event, PartData):
            value += event.data
            if len(value) > MAX_TEXT_FIELD_BYTES:
                raise invalid("name", "a form field other than 'file' is too large")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid("name", "form fields must be UTF-8 text") from exc
