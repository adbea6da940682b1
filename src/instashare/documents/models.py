from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, Text
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
