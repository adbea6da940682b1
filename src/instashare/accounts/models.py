from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from instashare.db import Base


class User(Base):
    __tablename__ = "user_account"

    # Stored trimmed and lower-cased, so the unique index is the case-insensitive rule.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    full_name: Mapped[str | None] = mapped_column(String(255), default=None)
