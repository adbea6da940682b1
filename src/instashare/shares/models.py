"""Shares: a named set of an owner's documents behind one secret link and/or named people."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import INT8MULTIRANGE
from sqlalchemy.orm import Mapped, mapped_column, relationship

from instashare.db import Base


class Share(Base):
    __tablename__ = "share"
    __table_args__ = (
        # The owner's listing, newest first, with the id as tie-breaker.
        Index("ix_share_owner_id_created_at_id", "owner_id", "created_at", "id"),
        # The sweep looks for expired shares only.
        Index("ix_share_expires_at", "expires_at", postgresql_where=text("expires_at IS NOT NULL")),
    )

    owner_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(Text, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    # Random, replaced on rotation. The link's token is a MAC of (id, nonce) under a key derived
    # from SECRET_KEY, so the row can rebuild the link but holds nothing that opens it.
    link_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    max_downloads: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Completed downloads through the link (what max_downloads limits); recipients' downloads
    # leave receipts but do not use up the link.
    download_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    view_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    documents: Mapped[list[ShareDocument]] = relationship(
        order_by="ShareDocument.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )
    recipients: Mapped[list[ShareRecipient]] = relationship(
        order_by="ShareRecipient.email",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )

    @property
    def document_ids(self) -> list[UUID]:
        return [item.document_id for item in self.documents]

    @property
    def recipient_emails(self) -> list[str]:
        return [item.email for item in self.recipients]


class ShareDocument(DefaultBase):
    """A document in a share; deleting the document removes it from every share (cascade)."""

    __tablename__ = "share_document"

    share_id: Mapped[UUID] = mapped_column(
        ForeignKey("share.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[UUID] = mapped_column(
        ForeignKey("document.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # Entries of the share's ZIP follow the order the owner gave.
    position: Mapped[int] = mapped_column(BigInteger)


class ShareRecipient(DefaultBase):
    """Someone a share is shared with, by email (normalized as at registration).

    Not a reference to an account: the person may register later, and the owner must not learn
    whether an address has an account.
    """

    __tablename__ = "share_recipient"

    share_id: Mapped[UUID] = mapped_column(
        ForeignKey("share.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(Text, primary_key=True, index=True)


class ShareDownload(Base):
    """One download of a share's ZIP or of one of its files by one client: receipt and progress.

    The byte ranges delivered so far are kept as a multirange; the download is complete (and
    counted, once) when they cover the whole archive, however many responses that took. While
    ``is_open``, a further response to the same client for the same archive (same ETag) adds to
    it; a completed download or one idle past the resume window is closed for good.
    """

    __tablename__ = "share_download"
    __table_args__ = (
        Index("ix_share_download_share_id_created_at", "share_id", "created_at"),
        Index(
            "uq_share_download_open",
            "share_id",
            "client_key",
            "etag",
            unique=True,
            postgresql_where=text("is_open"),
        ),
        Index("ix_share_download_open_updated_at", "updated_at", postgresql_where=text("is_open")),
    )

    share_id: Mapped[UUID] = mapped_column(ForeignKey("share.id", ondelete="CASCADE"))
    # The file downloaded alone, or None for the whole share; kept after the document is gone.
    document_id: Mapped[UUID | None] = mapped_column(default=None)
    # A hash of who the client is (recipient, unlock token, or address and user agent).
    client_key: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(Text)
    archive_size: Mapped[int] = mapped_column(BigInteger)
    delivered: Mapped[object] = mapped_column(
        INT8MULTIRANGE, server_default=text("'{}'::int8multirange")
    )
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    completed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    completed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    client: Mapped[str] = mapped_column(Text)  # the address truncated to its /24 or /48
    user_agent: Mapped[str | None] = mapped_column(Text, default=None)
    recipient: Mapped[str | None] = mapped_column(Text, default=None)
