"""Request and response bodies of the accounts API. None of them carries a password out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, examples=["ada@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
FullName = Annotated[str, msgspec.Meta(max_length=255)]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    full_name: FullName | None = None


class Credentials(msgspec.Struct):
    email: Annotated[str, msgspec.Meta(max_length=320)]
    # No minimum here: a too-short password is just a wrong one, answered like any other.
    password: Annotated[str, msgspec.Meta(max_length=128)]


class UserRead(msgspec.Struct):
    id: UUID
    email: str
    full_name: str | None
    created_at: datetime


class AccessToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
