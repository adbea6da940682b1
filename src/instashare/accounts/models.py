from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from instashare.db import Base


class User(Base):
    __tablename__ = "user_account"

    # Stored trimmed and lower-cased, so the unique index is the case-insensitive rule and
    # concurrent registrations of one address cannot both succeed.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    full_name: Mapped[str | None] = mapped_column(String(255), default=None)
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Carried by every access token; bumping it (password change, sign out everywhere) revokes
    # the tokens issued before, on every API process (see accounts/principals.py).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Kept in step with the owner's documents in the same transactions that add or remove one,
    # so quota checks and list totals never have to count a large collection.
    document_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Bytes promised to unfinished resumable uploads (their Upload-Length), counted against the
    # quota like bytes_used, so that parallel uploads cannot together overrun it.
    bytes_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
