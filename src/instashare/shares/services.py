"""The owner's side of shares: create, list, read, edit, rotate, revoke, and the receipts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar.exceptions import NotFoundException
from msgspec import UNSET
from sqlalchemy import delete, func, select

from instashare.accounts.passwords import hash_password
from instashare.config import Settings
from instashare.documents.models import Document
from instashare.shares.links import new_nonce
from instashare.shares.models import Share, ShareDocument, ShareDownload, ShareRecipient
from instashare.shares.rules import (
    check_document_ids,
    clean_message,
    clean_recipients,
    clean_title,
    resolve_expiry,
)
from instashare.shares.schemas import ShareCreate, ShareUpdate

SHARE_NOT_FOUND = "share not found"


@dataclass(frozen=True)
class ShareLimits:
    max_expiry: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> ShareLimits:
        return cls(max_expiry=timedelta(days=settings.share_max_expiry_days))


class ShareService(SQLAlchemyAsyncRepositoryService[Share]):
    class Repo(SQLAlchemyAsyncRepository[Share]):
        model_type = Share

    repository_type = Repo

    async def create_share(self, owner_id: UUID, data: ShareCreate, limits: ShareLimits) -> Share:
        """Every field is checked before anything is written; all or nothing."""
        now = datetime.now(UTC)
        check_document_ids(data.document_ids)
        share = Share(
            owner_id=owner_id,
            title=clean_title(data.title),
            message=clean_message(data.message),
            link_nonce=new_nonce(),
            expires_at=resolve_expiry(
                data.expires_at, data.expires_in, now=now, max_expiry=limits.max_expiry
            ),
            max_downloads=data.max_downloads,
        )
        recipients = clean_recipients(data.recipients)
        await self._require_owned_documents(owner_id, data.document_ids)
        if data.password is not None:
            share.password_hash = await hash_password(data.password)
        share.documents = _share_documents(data.document_ids)
        share.recipients = [ShareRecipient(email=email) for email in recipients]
        self.repository.session.add(share)
        await self.repository.session.flush()
        return share

    async def _require_owned_documents(self, owner_id: UUID, document_ids: Sequence[UUID]) -> None:
        owned = set(
            (
                await self.repository.session.scalars(
                    select(Document.id).where(
                        Document.owner_id == owner_id, Document.id.in_(document_ids)
                    )
                )
            ).all()
        )
        missing = [str(document_id) for document_id in document_ids if document_id not in owned]
        if missing:
            # Someone else's document is as absent as a missing one.
            raise NotFoundException(detail=f"document not found: {', '.join(missing[:5])}")

    async def get_owned(self, share_id: UUID, owner_id: UUID, *, lock: bool = False) -> Share:
        statement = select(Share).where(Share.id == share_id, Share.owner_id == owner_id)
        if lock:
            statement = statement.with_for_update()
        share: Share | None = (await self.repository.session.scalars(statement)).one_or_none()
        if share is None:
            raise NotFoundException(detail=SHARE_NOT_FOUND)
        return share

    async def list_owned(
        self, owner_id: UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[Share], int]:
        session = self.repository.session
        page = (
            select(Share)
            .where(Share.owner_id == owner_id)
            .order_by(Share.created_at.desc(), Share.id.desc())
            .limit(limit)
            .offset(offset)
        )
        items = (await session.scalars(page)).all()
        counted = select(func.count()).select_from(Share).where(Share.owner_id == owner_id)
        total = int(await session.scalar(counted) or 0)
        return items, total

    async def edit_share(
        self, share_id: UUID, owner_id: UUID, data: ShareUpdate, limits: ShareLimits
    ) -> Share:
        """Change the fields sent; the link stays the same. All or nothing."""
        now = datetime.now(UTC)
        # Checked first, so a bad field changes nothing (not even the other fields).
        title = clean_title(data.title) if data.title is not UNSET else UNSET
        message = clean_message(data.message) if data.message is not UNSET else UNSET
        recipients = clean_recipients(data.recipients) if data.recipients is not UNSET else UNSET
        if data.document_ids is not UNSET:
            check_document_ids(data.document_ids)
        expiry_sent = data.expires_at is not UNSET or data.expires_in is not UNSET
        expires_at = resolve_expiry(
            data.expires_at if data.expires_at is not UNSET else None,
            data.expires_in if data.expires_in is not UNSET else None,
            now=now,
            max_expiry=limits.max_expiry,
        )
        # Locked: concurrent edits of one share apply one after the other.
        share = await self.get_owned(share_id, owner_id, lock=True)
        if data.document_ids is not UNSET:
            await self._require_owned_documents(owner_id, data.document_ids)
            _replace_documents(share, data.document_ids)
        if data.password is not UNSET:
            share.password_hash = (
                await hash_password(data.password) if data.password is not None else None
            )
        if title is not UNSET:
            share.title = title
        if message is not UNSET:
            share.message = message
        if recipients is not UNSET:
            _replace_recipients(share, recipients)
        if expiry_sent:
            share.expires_at = expires_at
        if data.max_downloads is not UNSET:
            share.max_downloads = data.max_downloads
        # Changing only the documents or recipients does not touch a column of the row itself.
        share.updated_at = now
        await self.repository.session.flush()
        return share

    async def rotate(self, share_id: UUID, owner_id: UUID) -> Share:
        """A new link; the old one (and every unlock token issued for it) stops working now."""
        share = await self.get_owned(share_id, owner_id, lock=True)
        share.link_nonce = new_nonce()
        await self.repository.session.flush()
        return share

    async def revoke(self, share_id: UUID, owner_id: UUID) -> None:
        deleted = await self.repository.session.execute(
            delete(Share)
            .where(Share.id == share_id, Share.owner_id == owner_id)
            .returning(Share.id)
        )
        if deleted.first() is None:
            raise NotFoundException(detail=SHARE_NOT_FOUND)

    async def receipts(
        self, share_id: UUID, owner_id: UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[ShareDownload], int]:
        await self.get_owned(share_id, owner_id)
        session = self.repository.session
        page = (
            select(ShareDownload)
            .where(ShareDownload.share_id == share_id)
            .order_by(ShareDownload.created_at.desc(), ShareDownload.id.desc())
            .limit(limit)
            .offset(offset)
        )
        items = (await session.scalars(page)).all()
        counted = (
            select(func.count())
            .select_from(ShareDownload)
            .where(ShareDownload.share_id == share_id)
        )
        return items, int(await session.scalar(counted) or 0)


def _share_documents(document_ids: Sequence[UUID]) -> list[ShareDocument]:
    return [
        ShareDocument(document_id=document_id, position=position)
        for position, document_id in enumerate(document_ids)
    ]


def _replace_documents(share: Share, document_ids: Sequence[UUID]) -> None:
    """Keep the rows of documents that stay (a new row with the same key would clash)."""
    kept = {item.document_id: item for item in share.documents}
    replacement: list[ShareDocument] = []
    for position, document_id in enumerate(document_ids):
        item = kept.get(document_id) or ShareDocument(document_id=document_id)
        item.position = position
        replacement.append(item)
    share.documents = replacement


def _replace_recipients(share: Share, emails: Sequence[str]) -> None:
    kept = {item.email: item for item in share.recipients}
    share.recipients = [kept.get(email) or ShareRecipient(email=email) for email in emails]
