"""Request and response bodies of the documents API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from instashare.documents.models import Document, DocumentStatus


class DocumentRead(msgspec.Struct):
    id: UUID
    name: str
    status: DocumentStatus
    size: Annotated[int, msgspec.Meta(description="bytes of the file as uploaded")]
    compressed_size: Annotated[int | None, msgspec.Meta(description="bytes of the ZIP")]
    content_type: str
    sha256: Annotated[str, msgspec.Meta(description="of the uploaded bytes, lowercase hex")]
    created_at: datetime
    updated_at: datetime
    compressed_at: datetime | None
    error: Annotated[str | None, msgspec.Meta(description="why it failed, when failed")]

    @classmethod
    def from_model(cls, document: Document) -> DocumentRead:
        return cls(
            id=document.id,
            name=document.name,
            status=document.status,
            size=document.size,
            compressed_size=document.compressed_size,
            content_type=document.content_type,
            sha256=document.sha256,
            created_at=document.created_at,
            updated_at=document.updated_at,
            compressed_at=document.compressed_at,
            error=document.error,
        )


class DocumentRename(msgspec.Struct, forbid_unknown_fields=True):
    # Checked again after trimming by the service; this bound keeps absurd bodies out early.
    name: Annotated[str, msgspec.Meta(max_length=1024)]


class DocumentPage(msgspec.Struct):
    items: list[DocumentRead]
    total: int
    limit: int
    offset: int


class NotReady(msgspec.Struct):
    status_code: int
    detail: str
    status: DocumentStatus
