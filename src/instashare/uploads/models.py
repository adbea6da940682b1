from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from instashare.db import Base


class Upload(Base):
    """A resumable upload: how far it got, where its bytes are, what it becomes when complete.

    ``upload_offset`` only moves once the bytes before it are durably stored (fsynced, or in a
    recorded S3 part or tail object), so any process can continue from it after a crash.
    """

    __tablename__ = "upload"
    __table_args__ = (
        CheckConstraint("upload_offset >= 0 AND upload_offset <= length", name="offset_in_range"),
        # Text with a check rather than varchar(n): a limit changes without rewriting the table.
        CheckConstraint("char_length(name) <= 255", name="name_length"),
        CheckConstraint("char_length(content_type) <= 255", name="content_type_length"),
        # The expiry job looks for expired rows; few are expired at any time.
        Index("ix_upload_expires_at", "expires_at"),
    )

    owner_id: Mapped[UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    # Chosen at creation: it names the stored original (an S3 multipart upload targets its key
    # from the first part on) and becomes the Document's id when the last byte arrives.
    document_id: Mapped[UUID] = mapped_column(unique=True)
    length: Mapped[int] = mapped_column(BigInteger)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    name: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    # The Upload-Metadata header as received (rebuilt from its checked parts), for HEAD.
    upload_metadata: Mapped[str | None] = mapped_column(Text, default=None)
    # SHA-256 of the bytes before upload_offset, as a serialized hasher state; None when it
    # cannot be continued (the file is then hashed once, at completion).
    sha256_state: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # S3 only: the multipart upload and its recorded parts [{"number", "etag", "size"}], kept
    # beside the offset so that one UPDATE moves both.
    multipart_id: Mapped[str | None] = mapped_column(Text, default=None)
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    # Set in the transaction that records the Document.
    completed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
