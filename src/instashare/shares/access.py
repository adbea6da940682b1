"""Reaching a share without owning it: through its secret link, or as one of its recipients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    TooManyRequestsException,
)
from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import noload

from instashare.accounts.models import User
from instashare.accounts.passwords import verify_password
from instashare.config import Settings
from instashare.documents.models import Document, DocumentStatus
from instashare.shares.links import ShareKeys, UnlockGrant
from instashare.shares.models import Share, ShareDocument, ShareRecipient
from instashare.throttle import Throttle
from instashare.validation import invalid

# One answer for every link that does not open a share: unknown, rotated away, revoked, expired,
# emptied or used up. Nothing in it tells these cases apart.
LINK_GONE = "this link does not exist or is no longer available"
WRONG_PASSWORD = "wrong password for this share"  # noqa: S105
SHARE_NOT_FOUND = "share not found"


def gone() -> NotFoundException:
    return NotFoundException(detail=LINK_GONE)


def expired(share: Share) -> bool:
    return share.expires_at is not None and share.expires_at <= datetime.now(UTC)


def used_up(share: Share) -> bool:
    return share.max_downloads is not None and share.download_count >= share.max_downloads


def downloads_left(share: Share) -> int | None:
    if share.max_downloads is None:
        return None
    return max(0, share.max_downloads - share.download_count)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (the scheme compared case-insensitively)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True, slots=True)
class SharedDocument:
    """A document as a share serves it: its columns, without the cost of an ORM object each
    (a share may hold a thousand, read on every download)."""

    id: UUID
    name: str
    status: DocumentStatus
    size: int
    sha256: str
    created_at: datetime
    archive_key: str | None
    compressed_size: int | None
    archive_crc32: int | None
    archive_data_offset: int | None
    archive_data_size: int | None


_SHARED_COLUMNS = (
    Document.id,
    Document.name,
    Document.status,
    Document.size,
    Document.sha256,
    Document.created_at,
    Document.archive_key,
    Document.compressed_size,
    Document.archive_crc32,
    Document.archive_data_offset,
    Document.archive_data_size,
)


@dataclass(frozen=True)
class SharedEntry:
    share: Share
    owner: User
    documents: list[SharedDocument]


class ShareAccess:
    def __init__(self, session: AsyncSession, keys: ShareKeys) -> None:
        self.session = session
        self.keys = keys

    async def _share(self, *conditions: ColumnElement[bool]) -> Share | None:
        # Without its collections: the documents are read by documents(), the recipients not
        # at all, and a share of a thousand documents should not load them twice.
        statement = select(Share).where(*conditions).options(noload("*"))
        share: Share | None = (await self.session.scalars(statement)).one_or_none()
        return share

    async def by_link(self, token: str) -> Share:
        """The unexpired share the token opens, or the one 404 for every other case."""
        link = self.keys.parse_link(token)
        if link is None:
            raise gone()
        share = await self._share(Share.id == link.share_id)
        # The id is no secret (recipients see it); the tag is, and is compared in constant time.
        if share is None or not self.keys.link_matches(link, share.link_nonce):
            raise gone()
        if expired(share):
            raise gone()
        return share

    async def documents(self, share: Share, *, absent: str = LINK_GONE) -> list[SharedDocument]:
        """The share's documents in the owner's order, whatever their status.

        A share whose last document was deleted is empty, and answers 404 (``absent``).
        """
        statement = (
            select(*_SHARED_COLUMNS)
            .join(ShareDocument, ShareDocument.document_id == Document.id)
            .where(ShareDocument.share_id == share.id)
            .order_by(ShareDocument.position)
        )
        rows = (await self.session.execute(statement)).tuples()
        documents = [SharedDocument(*row) for row in rows]
        if not documents:
            raise NotFoundException(detail=absent)
        return documents

    async def count_view(self, share: Share) -> None:
        await self.session.execute(
            update(Share)
            .where(Share.id == share.id)
            .values(view_count=Share.view_count + 1, updated_at=Share.updated_at)
        )

    def grant(self, share: Share, authorization: str | None) -> UnlockGrant | None:
        """The unlock token's grant, if the request carries one valid for this share now."""
        token = bearer_token(authorization)
        if share.password_hash is None or token is None:
            return None
        return self.keys.verify_unlock(token, share.id, share.link_nonce, share.password_hash)

    async def unlock(self, share: Share, password: str, throttle: Throttle) -> str:
        """An unlock token for the right password; wrong ones are counted per share."""
        if share.password_hash is None:
            raise invalid("password", "this share has no password; download it directly")
        key = f"share-unlock:{share.id}"
        # Counted before checking, so parallel guesses cannot slip past the limit together.
        verdict = await throttle.attempt(key)
        if not verdict.allowed:
            raise TooManyRequestsException(
                detail=f"too many wrong passwords for this share; try again in "
                f"{verdict.retry_after} seconds",
                headers={"Retry-After": str(verdict.retry_after)},
            )
        if not await verify_password(password, share.password_hash):
            raise NotAuthorizedException(detail=WRONG_PASSWORD)
        await throttle.refund(key)
        return self.keys.issue_unlock(share.id, share.link_nonce, share.password_hash)

    # --- recipients ----------------------------------------------------------------------

    async def for_recipient(self, share_id: UUID, email: str) -> Share:
        share = await self._share(
            Share.id == share_id,
            exists().where(ShareRecipient.share_id == Share.id, ShareRecipient.email == email),
        )
        if share is None or expired(share):
            raise NotFoundException(detail=SHARE_NOT_FOUND)
        return share

    async def shared_with(
        self, email: str, *, limit: int, offset: int
    ) -> tuple[list[SharedEntry], int]:
        """Live shares naming ``email``, newest first, with their owners and documents."""
        matching = [
            exists().where(ShareRecipient.share_id == Share.id, ShareRecipient.email == email),
            or_(Share.expires_at.is_(None), Share.expires_at > func.now()),
            exists().where(ShareDocument.share_id == Share.id),
        ]
        page = (
            select(Share, User)
            .join(User, User.id == Share.owner_id)
            .where(*matching)
            .order_by(Share.created_at.desc(), Share.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self.session.execute(page)).tuples().all()
        total = await self.session.scalar(select(func.count()).select_from(Share).where(*matching))
        documents = await self._documents_of([share.id for share, _ in rows])
        entries = [
            SharedEntry(share=share, owner=owner, documents=documents.get(share.id, []))
            for share, owner in rows
        ]
        return entries, int(total or 0)

    async def _documents_of(self, share_ids: Sequence[UUID]) -> dict[UUID, list[SharedDocument]]:
        if not share_ids:
            return {}
        statement = (
            select(ShareDocument.share_id, *_SHARED_COLUMNS)
            .join(Document, Document.id == ShareDocument.document_id)
            .where(ShareDocument.share_id.in_(share_ids))
            .order_by(ShareDocument.share_id, ShareDocument.position)
        )
        grouped: dict[UUID, list[SharedDocument]] = {}
        for share_id, *columns in (await self.session.execute(statement)).tuples():
            grouped.setdefault(share_id, []).append(SharedDocument(*columns))
        return grouped


def unlock_throttle(engine: AsyncEngine, settings: Settings) -> Throttle:
    return Throttle(
        engine,
        limit=settings.share_unlock_max_attempts,
        window=timedelta(seconds=settings.share_unlock_window_seconds),
    )
