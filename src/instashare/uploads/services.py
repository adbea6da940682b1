"""Upload rules: creation within size and quota, lookup, and what storage is told about a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar.exceptions import NotFoundException
from sqlalchemy import select, update
from uuid_utils.compat import uuid7

from instashare.accounts.models import User
from instashare.config import Settings
from instashare.documents.names import content_type_for
from instashare.documents.services import UploadLimits, choose_name, original_key, too_large
from instashare.errors import PayloadTooLargeException
from instashare.storage import ResumableUpload, StoredPart
from instashare.uploads.models import Upload
from instashare.uploads.protocol import Metadata
from instashare.validation import invalid

NOT_FOUND = "upload not found (it may have expired or been terminated)"


@dataclass(frozen=True)
class UploadPolicy:
    """The limits every upload is held to, and how long an unfinished one is kept."""

    max_upload_bytes: int
    quota_bytes: int
    expiry: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPolicy:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            quota_bytes=settings.user_quota_bytes,
            expiry=timedelta(hours=settings.upload_expiry_hours),
        )

    @property
    def limits(self) -> UploadLimits:
        return UploadLimits(self.max_upload_bytes, self.quota_bytes)

    def expires_at(self) -> datetime:
        return datetime.now(UTC) + self.expiry


def scratch_key(upload_id: UUID) -> str:
    """Where an unfinished upload's bytes are kept, apart from every document's objects."""
    return f"uploads/{upload_id}"


def stored_view(upload: Upload) -> ResumableUpload:
    """The upload as storage knows it."""
    return ResumableUpload(
        scratch_key=scratch_key(upload.id),
        destination_key=original_key(upload.document_id),
        length=upload.length,
        offset=upload.upload_offset,
        content_type=upload.content_type,
        multipart_id=upload.multipart_id,
        parts=tuple(StoredPart.from_json(part) for part in upload.parts),
    )


def record_progress(upload: Upload, stored: ResumableUpload, sha256_state: bytes | None) -> None:
    upload.upload_offset = stored.offset
    upload.multipart_id = stored.multipart_id
    upload.parts = [part.as_json() for part in stored.parts]
    upload.sha256_state = sha256_state


def is_gone(upload: Upload, now: datetime | None = None) -> bool:
    """Expired rows answer as missing at once, before the expiry job removes them."""
    return upload.expires_at <= (now or datetime.now(UTC))


class UploadService(SQLAlchemyAsyncRepositoryService[Upload]):
    class Repo(SQLAlchemyAsyncRepository[Upload]):
        model_type = Upload

    repository_type = Repo

    async def start(
        self, owner_id: UUID, length: int, metadata: Metadata, policy: UploadPolicy
    ) -> Upload:
        """Check the name and the size, reserve ``length`` of the owner's quota, add the row."""
        filename = metadata.text("filename")
        name = metadata.text("name")
        if name is None and filename is None:
            raise invalid(
                "Upload-Metadata",
                "name the file: send 'filename' (or 'name') in Upload-Metadata",
            )
        name = choose_name(name, filename)
        content_type = content_type_for(metadata.text("filetype"), name)
        if length > policy.max_upload_bytes:
            raise PayloadTooLargeException(
                detail=f"Upload-Length exceeds the maximum size of {policy.max_upload_bytes} bytes"
            )
        session = self.repository.session
        # The owner's row lock serializes reservations with each other and with documents
        # being recorded, so parallel uploads cannot together pass the quota.
        totals = (
            await session.execute(
                select(User.bytes_used, User.bytes_reserved)
                .where(User.id == owner_id)
                .with_for_update()
            )
        ).one()
        remaining = policy.quota_bytes - int(totals.bytes_used) - int(totals.bytes_reserved)
        if length > remaining:
            raise too_large(policy.limits, remaining)
        upload = Upload(
            owner_id=owner_id,
            document_id=uuid7(),
            length=length,
            upload_offset=0,
            name=name,
            content_type=content_type,
            upload_metadata=metadata.raw,
            parts=[],
            expires_at=policy.expires_at(),
        )
        session.add(upload)
        await session.execute(
            update(User)
            .where(User.id == owner_id)
            .values(bytes_reserved=User.bytes_reserved + length)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return upload

    async def get_owned(self, upload_id: UUID, owner_id: UUID) -> Upload:
        upload = await self.get_one_or_none(id=upload_id, owner_id=owner_id)
        if upload is None or is_gone(upload):
            # Someone else's upload is as absent as a missing one.
            raise NotFoundException(detail=NOT_FOUND)
        return upload
