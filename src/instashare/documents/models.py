from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from instashare.db import Base


class DocumentStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Document(Base):
    __tablename__ = "document"
    __table_args__ = (
        # The owner's listing (newest first, id as tie-breaker) is read from this index alone.
        Index("ix_document_owner_id_created_at_id", "owner_id", "created_at", "id"),
        # A client that reconnects to GET /api/events asks for what changed since it left.
        Index("ix_document_owner_id_changed_at", "owner_id", "changed_at"),
        # The recovery sweep looks only at unfinished documents, a small slice of the table.
        Index(
            "ix_document_unfinished_updated_at",
            "updated_at",
            postgresql_where=text("status IN ('pending', 'processing')"),
        ),
    )

    owner_id: Mapped[UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[DocumentStatus] = mapped_column(
        Enum(
            DocumentStatus,
            name="document_status",
            native_enum=False,
            length=16,
            create_constraint=True,
            values_callable=lambda statuses: [s.value for s in statuses],
        ),
        default=DocumentStatus.PENDING,
    )
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    original_key: Mapped[str | None] = mapped_column(String(255), default=None)
    archive_key: Mapped[str | None] = mapped_column(String(255), default=None)
    compressed_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    compressed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Where the deflate stream sits inside the stored archive and its checksum: enough to serve
    # the archive under any later name without recompressing (see instashare.zipstream).
    archive_crc32: Mapped[int | None] = mapped_column(BigInteger, default=None)
    archive_data_offset: Mapped[int | None] = mapped_column(BigInteger, default=None)
    archive_data_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The compression job that holds this document, and until when its claim stands unless
    # renewed; a claim that has lapsed (its worker died) may be taken over.
    claim_token: Mapped[UUID | None] = mapped_column(default=None)
    # Claims taken so far. Counted here, not only by the queue: a file that kills its worker
    # every time would otherwise be retried forever (each recovery starts a fresh job).
    compress_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    # When what an owner sees (name, status, sizes, error) last changed, by the database's clock.
    # Set by the trigger that also announces the change (see documents/events.py), whichever
    # process or worker made it; never written by the application.
    changed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
