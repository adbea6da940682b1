"""Request and response bodies of the shares API. No password or token is ever sent back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from instashare.documents.models import DocumentStatus

MAX_DOCUMENTS = 1000
MAX_RECIPIENTS = 100
MAX_TITLE_LENGTH = 200
MAX_MESSAGE_LENGTH = 5000
MAX_DOWNLOADS_LIMIT = 1_000_000_000

DocumentIds = Annotated[
    list[UUID], msgspec.Meta(min_length=1, max_length=MAX_DOCUMENTS, description="1-1000")
]
Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE_LENGTH)]
Message = Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE_LENGTH)]
ExpiresIn = Annotated[int, msgspec.Meta(ge=1, description="seconds from now")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
MaxDownloads = Annotated[int, msgspec.Meta(ge=1, le=MAX_DOWNLOADS_LIMIT)]
Recipients = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=320)]],
    msgspec.Meta(max_length=MAX_RECIPIENTS, examples=[["ada@example.com"]]),
]


class ShareCreate(msgspec.Struct, forbid_unknown_fields=True):
    document_ids: DocumentIds
    title: Title | None = None
    message: Message | None = None
    expires_at: datetime | None = None
    expires_in: ExpiresIn | None = None
    password: Password | None = None
    max_downloads: MaxDownloads | None = None
    recipients: Recipients = msgspec.field(default_factory=list)


class ShareUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; ``null`` removes a password, an expiry or a limit."""

    document_ids: DocumentIds | UnsetType = UNSET
    title: Title | UnsetType | None = UNSET
    message: Message | UnsetType | None = UNSET
    expires_at: datetime | UnsetType | None = UNSET
    expires_in: ExpiresIn | UnsetType = UNSET
    password: Password | UnsetType | None = UNSET
    max_downloads: MaxDownloads | UnsetType | None = UNSET
    recipients: Recipients | UnsetType = UNSET


class ShareRead(msgspec.Struct):
    id: UUID
    url: Annotated[str, msgspec.Meta(description="the secret link; keep it as you would a key")]
    title: str | None
    message: str | None
    document_ids: list[UUID]
    recipients: list[str]
    expires_at: datetime | None
    has_password: bool
    max_downloads: int | None
    download_count: int
    view_count: int
    created_at: datetime
    updated_at: datetime


class SharePage(msgspec.Struct):
    items: list[ShareRead]
    total: int
    limit: int
    offset: int


class Receipt(msgspec.Struct):
    at: Annotated[datetime, msgspec.Meta(description="when the download started")]
    bytes: Annotated[int, msgspec.Meta(description="bytes sent, over every response")]
    completed: bool
    client: Annotated[str, msgspec.Meta(description="the address truncated to its /24 or /48")]
    user_agent: str | None
    recipient: str | None
    document_id: Annotated[
        UUID | None, msgspec.Meta(description="the one file downloaded, or null for the share")
    ]


class ReceiptPage(msgspec.Struct):
    items: list[Receipt]
    total: int
    limit: int
    offset: int


class SharedFile(msgspec.Struct):
    id: UUID
    name: str
    size: int
    status: DocumentStatus


class PublicShare(msgspec.Struct):
    title: str | None
    message: str | None
    expires_at: datetime | None
    password_required: bool
    downloads_left: int | None
    files: Annotated[list[SharedFile], msgspec.Meta(description="[] until unlocked")]
    total_size: int


class Unlock(msgspec.Struct, forbid_unknown_fields=True):
    # No minimum: a too-short password is a wrong one, throttled like any other.
    password: Annotated[str, msgspec.Meta(max_length=128)]


class UnlockToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105


class Owner(msgspec.Struct):
    email: str
    full_name: str | None


class SharedWithMe(msgspec.Struct):
    id: UUID
    title: str | None
    message: str | None
    owner: Owner
    files: list[SharedFile]
    expires_at: datetime | None
    created_at: datetime


class SharedWithMePage(msgspec.Struct):
    items: list[SharedWithMe]
    total: int
    limit: int
    offset: int
